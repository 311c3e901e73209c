"""Agent runtime benchmark: per-job latency of a trivial agent, and the example agents.

Trivial agent (writes one small file to /out), 50 runs each, median and p99:
* sandbox only: ``runtime.run`` on a prepared workspace (the isolation cost itself)
* whole job: stage inputs, run, import /out as the result DAG, sign the receipt
for wasm warm (compiled module in memory), wasm cold (new engine, nothing cached),
python cold (new sandboxed interpreter) and python warm (fork of the warm worker).
Baseline, same run: a bare in-process function call writing the same file.

Usage: python bench/runtime.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from storage.blockstore import BlockStore  # noqa: E402
from storage.files import add_path  # noqa: E402


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def _time(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _measure(
    store: BlockStore,
    work: Path,
    key: nacl.signing.SigningKey,
    runtime: object,
    bundle: object,
    before: Callable[[], None],
    runs: int,
) -> tuple[tuple[float, float], tuple[float, float]]:
    request = RunRequest("bench", bundle)  # type: ignore[arg-type]
    with Workspace(store, request, work) as workspace:
        runtime.run(request, workspace)  # type: ignore[attr-defined]  # warm-up (worker start, compile)

        def sandbox_only() -> None:
            before()
            runtime.run(request, workspace)  # type: ignore[attr-defined]

        sandbox = _stats(_time(sandbox_only, runs))
    executor = Executor(store, {runtime.name: runtime}, key, work)  # type: ignore[attr-defined,dict-item]

    def whole_job() -> None:
        before()
        outcome = executor.run(request)
        assert outcome.status == "ok", outcome.logs

    return sandbox, _stats(_time(whole_job, runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    work = Path(tempfile.mkdtemp(prefix="mycel-runtime-bench-"))
    store = BlockStore(work / "blocks")
    key = nacl.signing.SigningKey.generate()
    wasm_bundle = pack(REPO / "bench" / "agents" / "trivial-wasm", store)
    py_bundle = pack(REPO / "bench" / "agents" / "trivial-python", store)

    def bare() -> None:
        with open(work / "bare.txt", "w") as out:
            out.write("ok\n")

    baseline = _stats(_time(bare, runs))
    rows: list[tuple[str, tuple[float, float], tuple[float, float]]] = []

    wasm = WasmRuntime()
    python_cold, python_warm = PythonRuntime(), PythonRuntime(warm=True)
    cases: list[tuple[str, object, object, Callable[[], None]]] = [
        ("wasm warm", wasm, wasm_bundle, lambda: None),
        ("wasm cold", wasm, wasm_bundle, wasm.clear_memory_cache),  # recompiled every run
        ("python cold", python_cold, py_bundle, lambda: None),
        ("python warm", python_warm, py_bundle, lambda: None),
    ]
    for label, runtime, bundle, before in cases:
        rows.append((label, *_measure(store, work, key, runtime, bundle, before, runs)))
    python_warm.close()

    print(f"trivial agent, {runs} runs each (ms)        median     p99   ratio to bare call (median)")
    print(f"  bare in-process function call     {baseline[0]:8.3f} {baseline[1]:8.3f}")
    for label, sandbox, whole in rows:
        print(
            f"  {label:12} sandbox only          {sandbox[0]:8.2f} {sandbox[1]:8.2f}   {sandbox[0] / baseline[0]:8.0f}x"
        )
        print(f"  {label:12} whole job             {whole[0]:8.2f} {whole[1]:8.2f}   {whole[0] / baseline[0]:8.0f}x")

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
    os.system(f"rm -rf {work}")


if __name__ == "__main__":
    main()
