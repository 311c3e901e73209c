"""Jobs benchmark: end-to-end latency, throughput, and bytes moved by data gravity.

1. Latency: a trivial wasm agent whose input lives on node 1, submitted to node 0, 100
   jobs one after another; submit -> done with a verified result CID (the receipt is
   checked by the requester). Median and p99, against the same agent run in process
   (executor only) in the same run.
2. Throughput: jobs per second a 3-node cluster sustains with 12 in flight.
3. Data gravity: bytes moved for one job over a 64 MiB dataset, against the bytes a
   "ship the data to the requester" design would move (the dataset itself).

Usage: python bench/jobs.py [--jobs 100]

Scale mode: ``--scale 3,10`` starts a cluster of each size in turn (the input on node 1,
jobs submitted to node 0) and prints, per size: placement time per job (from the job's
own transitions: ``placing`` -> ``running``, i.e. candidates, rules and score, before any
offer), submit -> done, CPU per job summed over every node of the cluster (/proc/<pid>/stat
before and after), each as median and spread (p10-p90), and jobs/s with 32 in flight.
Jobs are waited for on their event stream, so the client's polling costs the nodes nothing.
Example: python bench/jobs.py --scale 3,10 --jobs 100
With ``--against DIR`` (another checkout, e.g. ``git archive v1 | tar -x -C DIR``) each size runs
``--rounds`` rounds, that build and this one alternating, and prints both.

Load mode: ``--in-flight N`` keeps N jobs in flight on 3 nodes (``--nodes``) (submitted to one of them)
until ``--jobs`` have finished, and prints failures, jobs/s and submit->done p50/p99. Jobs
beyond the nodes' slots and queues wait ``queued`` on the requester instead of failing.
``--nodes`` sets the cluster size; with ``--against DIR`` it runs ``--rounds`` rounds, that
build and this one alternating. Every job is followed on its event stream, never polled.
Example: python bench/jobs.py --in-flight 32 --jobs 600 --nodes 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nacl.signing  # noqa: E402

from agents.bundle import pack  # noqa: E402
from agents.executor import Executor  # noqa: E402
from agents.runtime.base import RunRequest  # noqa: E402
from agents.runtime.wasm import WasmRuntime  # noqa: E402
from bench.stats import alternate, code_of, cpu_seconds, machine_note, spread  # noqa: E402
from node.cluster import cluster_down, cluster_up, http_json  # noqa: E402
from storage.blockstore import BlockStore  # noqa: E402
from storage.files import add_path  # noqa: E402

MIB = 1 << 20


def _post(url: str, body: object, content_type: str = "application/json") -> dict[str, object]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _follow(api: str, body: dict[str, object]) -> tuple[float, dict[str, Any]]:
    """Submit a job and follow its event stream until it ends: (submit -> end seconds, the job).

    The stream closes when the job ends, and its ``state`` events are the job's transitions
    (published once on disk), so the client costs the nodes one request and one subscription
    per job instead of a poll every few milliseconds. The job's record is read only when the
    stream was cut short (a ``dropped`` marker)."""
    started = time.perf_counter()
    job_id = _post(f"{api}/v1/jobs", body)["job_id"]
    transitions: list[dict[str, Any]] = []
    dropped = False
    with urllib.request.urlopen(f"{api}/v1/jobs/{job_id}/events", timeout=120) as stream:
        kind = ""
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                if kind == "state":
                    transitions.append(json.loads(line[len("data: ") :]))
                dropped |= kind == "dropped"
    elapsed = time.perf_counter() - started
    if dropped or not transitions:
        job: dict[str, Any] = http_json(f"{api}/v1/jobs/{job_id}")
        return elapsed, job
    return elapsed, {"job_id": job_id, "state": transitions[-1]["state"], "transitions": transitions}


def _run_job(api: str, body: dict[str, object]) -> float:
    seconds, _ = _settle_done(api, body)
    return seconds


def _settle_done(api: str, body: dict[str, object]) -> tuple[float, dict[str, Any]]:
    seconds, job = _follow(api, body)
    if job["state"] != "done":
        raise SystemExit(f"job failed: {job['transitions'][-1]}")
    return seconds, job


def _settle(api: str, body: dict[str, object]) -> tuple[float, str, str]:
    """(submit -> final seconds, final state, last reason) of one job; never raises on a failed job."""
    seconds, job = _follow(api, body)
    return seconds, str(job["state"]), str(job["transitions"][-1]["reason"])


def _wait_done(api: str, body: dict[str, object]) -> dict[str, Any]:
    """Submit a job and wait on its event stream until it ends; its final record."""
    return _settle_done(api, body)[1]


def _placement_seconds(job: dict[str, Any]) -> float:
    """From the first ``placing`` to the first ``running`` transition: placement, before any offer."""
    states = [(t["state"], float(t["at"])) for t in job["transitions"]]
    placing = next(at for state, at in states if state == "placing")
    return next(at for state, at in states if state == "running") - placing


def _spread(samples: list[float], scale: float = 1000.0) -> str:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(len(ordered) * q))] * scale  # noqa: E731
    return f"{statistics.median(ordered) * scale:7.2f} ({pick(0.1):.2f}-{pick(0.9):.2f})"


@dataclass
class ScaleRun:
    """One cluster's samples: per job placement, latency and cluster CPU, and the throughput."""

    placement: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    cpu_total: float = 0.0  # CPU seconds of the whole sequential phase (no 10 ms tick rounding)
    throughput: float = 0.0


def _scale_run(size: int, count: int, in_flight: int, tree: Path | None = None) -> ScaleRun:
    run = ScaleRun()
    work = Path(tempfile.mkdtemp(prefix="mycel-jobs-scale-"))
    try:
        with code_of(tree):
            nodes = cluster_up(size, work / "cluster", regions=["eu"] * size, timeout=120.0)
        try:
            requester = nodes[0]
            agent = _pack_on(requester.data_dir)
            tiny = _post(f"{nodes[1].api_url}/v1/blobs", b"x", "application/octet-stream")["cid"]
            body = {"agent": agent, "inputs": {"in": tiny}}
            for _ in range(3):
                _wait_done(requester.api_url, body)  # warm-up: agent fetched, module compiled, RTTs
            first = sum(cpu_seconds(n.pid) for n in nodes)
            for _ in range(count):
                before = sum(cpu_seconds(n.pid) for n in nodes)
                started = time.perf_counter()
                job = _wait_done(requester.api_url, body)
                run.latency.append(time.perf_counter() - started)
                run.cpu.append(sum(cpu_seconds(n.pid) for n in nodes) - before)
                run.placement.append(_placement_seconds(job))
            run.cpu_total = sum(cpu_seconds(n.pid) for n in nodes) - first
            many = max(count, 3 * in_flight)
            started = time.perf_counter()
            with ThreadPoolExecutor(in_flight) as pool:
                list(pool.map(_wait_done, [requester.api_url] * many, [body] * many))
            run.throughput = many / (time.perf_counter() - started)
        finally:
            cluster_down(work / "cluster")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return run


HEADER = "  nodes  placement ms        submit->done ms     cluster CPU ms/job (mean)   jobs/s (32 in flight)"


def _row(label: str, size: int, runs: list[ScaleRun]) -> str:
    placement = [x for r in runs for x in r.placement]
    latency = [x for r in runs for x in r.latency]
    cpu = [x for r in runs for x in r.cpu]
    mean = sum(r.cpu_total for r in runs) / sum(len(r.cpu) for r in runs) * 1000
    rates = spread([r.throughput for r in runs])
    return (f"  {size:5d}  {_spread(placement)}  {_spread(latency)}  {_spread(cpu)} ({mean:5.1f})"
            f"  {rates.show()}  {label}")  # fmt: skip


def scale(sizes: list[int], count: int, in_flight: int = 32, against: Path | None = None, rounds: int = 3) -> None:
    """Per-job placement time, latency and cluster CPU, and throughput, at each cluster size.

    With ``against`` (another checkout of the repository, e.g. ``git archive`` of the last
    release), each size runs ``rounds`` rounds, both builds once per round in rotated order,
    so the load of a shared machine falls on both alike; figures pool every round's jobs,
    and jobs/s is the median (min-max) over rounds."""
    print(f"scale: trivial wasm jobs, input on node 1, submitted to node 0; median (p10-p90), {count} jobs")
    print(HEADER)
    for size in sizes:
        if against is None:
            print(_row("", size, [_scale_run(size, count, in_flight)]))
            continue
        builds: dict[str, Path | None] = {"before": against, "after": None}
        samples = alternate({name: partial(_scale_run, size, count, in_flight, tree) for name, tree in builds.items()},
                            rounds)  # fmt: skip
        for name in builds:
            print(_row(name, size, samples[name]), flush=True)
    print(f"  {machine_note()}")


def load(count: int, in_flight: int, size: int = 3, tree: Path | None = None) -> None:
    """Keep ``in_flight`` jobs going on a ``size``-node cluster until ``count`` have finished."""
    work = Path(tempfile.mkdtemp(prefix="mycel-jobs-load-"))
    try:
        with code_of(tree):
            nodes = cluster_up(size, work / "cluster", regions=["eu"] * size, timeout=120.0)
        try:
            requester = nodes[0]
            agent = _pack_on(requester.data_dir)
            tiny = _post(f"{nodes[1].api_url}/v1/blobs", b"x", "application/octet-stream")["cid"]
            body = {"agent": agent, "inputs": {"in": tiny}}
            _settle(requester.api_url, body)  # warm-up: agent fetched, module compiled
            started = time.perf_counter()
            with ThreadPoolExecutor(in_flight) as pool:
                outcomes = list(pool.map(lambda _: _settle(requester.api_url, body), range(count)))
            elapsed = time.perf_counter() - started
        finally:
            cluster_down(work / "cluster")
        latencies = sorted(seconds for seconds, _, _ in outcomes)
        failed = [reason for _, state, reason in outcomes if state != "done"]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"load: {count} trivial wasm jobs, {in_flight} in flight, {size} nodes, submitted to one"
            f"{f' (code of {tree})' if tree else ''}"
        )
        print(f"  failures: {len(failed)} of {count}")
        for reason in sorted(set(failed))[:5]:
            print(f"    {reason[:200]}")
        print(f"  throughput: {count / elapsed:.1f} jobs/s over {elapsed:.1f} s")
        print(f"  submit -> final: p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
        print(f"  {machine_note()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _metric(api: str, name: str) -> float:
    with urllib.request.urlopen(f"{api}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def _pack_on(data_dir: str) -> str:
    with BlockStore(Path(data_dir) / "blocks") as store:
        return str(pack(REPO / "bench" / "agents" / "trivial-wasm", store).agent_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=0, help="load mode: jobs kept in flight (e.g. 32)")
    parser.add_argument("--scale", default="", help="scale mode: cluster sizes, e.g. 3,10,30")
    parser.add_argument("--against", type=Path, help="scale mode: another checkout to compare with, alternating")
    parser.add_argument("--rounds", type=int, default=3, help="scale mode with --against: rounds per size")
    parser.add_argument("--nodes", type=int, default=3, help="load mode: cluster size")
    options = parser.parse_args()
    count = options.jobs
    if options.scale:
        scale([int(size) for size in options.scale.split(",")], count, against=options.against, rounds=options.rounds)
        return
    if options.in_flight:
        for tree in [None] if options.against is None else [options.against, None] * options.rounds:
            load(count, options.in_flight, options.nodes, tree)
        return
    work = Path(tempfile.mkdtemp(prefix="mycel-jobs-bench-"))
    try:
        # in-process baseline: the executor alone, same agent, same tiny input
        store = BlockStore(work / "local")
        (work / "tiny.txt").write_text("x")
        tiny_local = add_path(store, work / "tiny.txt").cid
        bundle = pack(REPO / "bench" / "agents" / "trivial-wasm", store)
        executor = Executor(store, {"wasm": WasmRuntime()}, nacl.signing.SigningKey.generate(), work)
        executor.run(RunRequest("warm", bundle, {"in": tiny_local}))
        local = []
        for i in range(count):
            started = time.perf_counter()
            executor.run(RunRequest(f"local-{i}", bundle, {"in": tiny_local}))
            local.append(time.perf_counter() - started)
        store.close()

        nodes = cluster_up(3, work / "cluster", regions=["eu", "eu", "eu"])
        try:
            requester, holder = nodes[0], nodes[1]
            agent = _pack_on(requester.data_dir)
            tiny = _post(f"{holder.api_url}/v1/blobs", b"x", "application/octet-stream")["cid"]
            body = {"agent": agent, "inputs": {"in": tiny}}
            _run_job(requester.api_url, body)  # warm-up: agent fetched, module compiled
            remote = [_run_job(requester.api_url, body) for _ in range(count)]

            started = time.perf_counter()
            with ThreadPoolExecutor(12) as pool:
                list(pool.map(lambda _: _run_job(requester.api_url, body), range(count)))
            throughput = count / (time.perf_counter() - started)

            dataset = _post(
                f"{holder.api_url}/v1/blobs", bytes(range(256)) * (64 * MIB // 256), "application/octet-stream"
            )
            before = sum(_metric(n.api_url, "mycel_bytes_out_total") for n in nodes)
            _run_job(requester.api_url, {"agent": agent, "inputs": {"in": dataset["cid"]}})
            moved = sum(_metric(n.api_url, "mycel_bytes_out_total") for n in nodes) - before
        finally:
            cluster_down(work / "cluster")

        def stats(samples: list[float]) -> tuple[float, float]:
            ordered = sorted(samples)
            return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

        (rm, rp), (lm, lp) = stats(remote), stats(local)
        print(f"trivial wasm job, {count} jobs           median ms    p99 ms")
        print(f"  across 2 nodes (submit -> done)    {rm:9.1f} {rp:9.1f}   ratio to in-process {rm / lm:.1f}x")
        print(f"  in process (executor only)         {lm:9.1f} {lp:9.1f}")
        print(f"throughput, 3-node cluster, 12 in flight: {throughput:.1f} jobs/s")
        print(
            f"data gravity, 64 MiB dataset: {moved / 1e6:.2f} MB moved vs {64 * MIB / 1e6:.1f} MB to ship the data "
            f"({moved / (64 * MIB):.4f} of the baseline)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
