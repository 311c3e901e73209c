"""Agent runtime benchmark: per-job latency of a trivial agent, and the example agents.

Trivial agent (writes one small file to /out), --runs runs per case per round:
* sandbox only: ``runtime.run`` on a prepared workspace (the isolation cost itself)
* whole job: stage inputs, run, import /out as the result DAG, sign the receipt
for wasm warm (compiled module in memory), wasm cold (new engine, nothing cached),
python cold (new sandboxed interpreter) and python warm (fork of the warm worker).
Baseline: a bare in-process function call writing the same file, measured in every round
like any other case. --rounds rounds, every case once per round in an order rotated each
round; each row gives the median and p99 over all its runs, the spread (min-max) of the
per-round medians, and the ratio to the bare call's median of the same round (its median).

Usage: python bench/runtime.py [--runs 50] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nacl.signing  # noqa: E402

from agents.bundle import pack  # noqa: E402
from agents.executor import Executor  # noqa: E402
from agents.runtime.base import RunRequest, Workspace  # noqa: E402
from agents.runtime.python import PythonRuntime  # noqa: E402
from agents.runtime.wasm import WasmRuntime  # noqa: E402
from bench.stats import alternate, machine_note, ratios, spread  # noqa: E402
from storage.blockstore import BlockStore  # noqa: E402
from storage.files import add_path  # noqa: E402


def _time(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall seconds of ``runs`` calls of ``fn``."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _cases(
    stack: contextlib.ExitStack,
    store: BlockStore,
    work: Path,
    key: nacl.signing.SigningKey,
    runtime: object,
    bundle: object,
    before: Callable[[], None],
    label: str,
) -> dict[str, Callable[[], None]]:
    """The sandbox-only and whole-job calls of one runtime, warmed up once (worker start, compile)."""
    request = RunRequest("bench", bundle)  # type: ignore[arg-type]
    workspace = stack.enter_context(Workspace(store, request, work))
    runtime.run(request, workspace)  # type: ignore[attr-defined]
    executor = Executor(store, {runtime.name: runtime}, key, work)  # type: ignore[attr-defined,dict-item]

    def sandbox_only() -> None:
        before()
        runtime.run(request, workspace)  # type: ignore[attr-defined]

    def whole_job() -> None:
        before()
        outcome = executor.run(request)
        assert outcome.status == "ok", outcome.logs

    return {f"{label} sandbox only": sandbox_only, f"{label} whole job": whole_job}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="runs of each case per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a short run: 2 runs, 2 rounds, no example agents")
    opts = parser.parse_args()
    runs, rounds = (2, 2) if opts.quick else (opts.runs, opts.rounds)
    if runs < 1 or rounds < 1:
        parser.error("--runs and --rounds must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="mycel-runtime-bench-"))
    store = BlockStore(work / "blocks")
    key = nacl.signing.SigningKey.generate()
    wasm_bundle = pack(REPO / "bench" / "agents" / "trivial-wasm", store)
    py_bundle = pack(REPO / "bench" / "agents" / "trivial-python", store)

    (work / "bare").mkdir()
    fresh = itertools.count()

    def bare() -> None:
        # a new file each call, as the agent writes a new file into a new /out (rewriting one
        # file would time ext4's flush on truncate-and-rewrite instead)
        with open(work / "bare" / f"{next(fresh)}.txt", "w") as out:
            out.write("ok\n")

    wasm = WasmRuntime()
    python_cold, python_warm = PythonRuntime(), PythonRuntime(warm=True)
    runtimes: list[tuple[str, object, object, Callable[[], None]]] = [
        ("wasm warm", wasm, wasm_bundle, lambda: None),
        ("wasm cold", wasm, wasm_bundle, wasm.clear_memory_cache),  # recompiled every run
        ("python cold", python_cold, py_bundle, lambda: None),
        ("python warm", python_warm, py_bundle, lambda: None),
    ]
    with contextlib.ExitStack() as stack:
        calls: dict[str, Callable[[], None]] = {"bare in-process call": bare}
        for label, runtime, bundle, before in runtimes:
            calls |= _cases(stack, store, work, key, runtime, bundle, before, label)
        jobs = {name: (lambda call=call: _time(call, runs)) for name, call in calls.items()}
        samples = alternate(jobs, rounds)
    python_warm.close()

    bare_medians = [spread(s).median for s in samples["bare in-process call"]]
    print(f"trivial agent, {runs} runs per case in each of {rounds} rounds, alternating; {machine_note()}")
    print(f"  {'ms':34}{'median':>9}{'p99':>9}   {'round medians (min-max)':>24}   ratio to bare call")
    for name, per_round in samples.items():
        every = [x * 1000 for block in per_round for x in block]
        medians = [spread(block).median * 1000 for block in per_round]
        row = f"  {name:34}{spread(every).median:9.3f}{_p99(every):9.3f}   {spread(medians).show(3):>24}"
        if name != "bare in-process call":
            row += f"   {ratios(medians, [m * 1000 for m in bare_medians]).median:8.0f}x"
        print(row)
    if opts.quick:
        store.close()
        shutil.rmtree(work, ignore_errors=True)
        return

    # the example agents, on their example data
    (work / "docs").mkdir()
    for i in range(20):
        (work / "docs" / f"doc{i}.txt").write_text(("the quick brown fox jumps over the lazy dog " * 200 + "\n") * 20)
    docs = add_path(store, work / "docs").cid
    subprocess.run(
        [sys.executable, str(REPO / "examples/sensor-anomaly/generate_telemetry.py"), str(work / "tel")],
        check=True,
        capture_output=True,
    )
    (work / "tel" / "faults.json").unlink()
    telemetry = add_path(store, work / "tel").cid
    executor = Executor(store, {"wasm": wasm, "python": PythonRuntime(warm=False)}, key, work)
    print("example agents (whole job, one run each):")
    sample = REPO / "examples" / "doc-search" / "sample"
    search = {"docs": add_path(store, sample / "docs").cid, "queries": add_path(store, sample / "queries").cid}
    examples = (
        ("wasm-wordcount", {"docs": docs}),
        ("sensor-anomaly", {"telemetry": telemetry}),
        ("doc-search", search),
    )
    for name, inputs in examples:
        bundle = pack(REPO / "examples" / name, store)
        started = time.perf_counter()
        outcome = executor.run(RunRequest(name, bundle, inputs))
        elapsed = time.perf_counter() - started
        print(f"  {name:16} {elapsed * 1000:8.0f} ms   status {outcome.status}   result {outcome.result}")
    store.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
