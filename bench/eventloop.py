"""Event-loop benchmark: API latency of a node that runs a job and answers peers' ``have`` probes.

A 2-node cluster; node 0 holds a pinned directory of --files small files (20,000 by
default). Each round measures the latency of ``GET /v1/openapi.json`` (a handler that
does nothing but run on the event loop, so its latency is the loop's responsiveness)
on node 0, sequentially, for --seconds, in two conditions, alternating:

* idle (the baseline, measured in the same run): nothing else happens;
* loaded: jobs over the directory run back to back on node 0 (the executor stages all
  of its files), and a peer in this process probes node 0 with ``have`` requests for
  the directory, as placement does, from --probers concurrent loops.

Printed: median and spread (min-max over rounds) of the per-round p50 and p99, the
ratio of loaded to idle p99, and how many probes and jobs the loaded windows served.
Goal: loaded p99 under 50 ms.

Usage: python bench/eventloop.py [--files 20000] [--rounds 3] [--seconds 4] [--probers 4] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nacl.signing  # noqa: E402

from agents.bundle import pack  # noqa: E402
from node.cluster import cluster_down, cluster_up, http_json  # noqa: E402
from node.exchange import BlockExchange  # noqa: E402
from node.identity import NodeIdentity  # noqa: E402
from node.metrics import Metrics  # noqa: E402
from node.p2p.network import P2PNetwork  # noqa: E402
from storage.blockstore import BlockStore  # noqa: E402
from storage.cid import CID  # noqa: E402
from storage.files import add_path  # noqa: E402


def _post_json(url: str, body: object) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _make_tree(root: Path, files: int) -> None:
    for index in range(files):
        folder = root / f"d{index // 200:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:05d}.txt").write_bytes(f"file {index}\n".encode() * 8)


def _seed(data_dir: str, tree: Path) -> tuple[str, str]:
    """Store the directory and the agent in node 0's store (LMDB allows a second process)."""
    with BlockStore(Path(data_dir) / "blocks") as store:
        directory = add_path(store, tree, name="bench tree").cid
        agent = pack(REPO / "bench" / "agents" / "trivial-wasm", store).agent_id
    return str(directory), str(agent)


def _latencies(api: str, seconds: float) -> list[float]:
    host, port = api.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection.request("GET", "/v1/openapi.json")
        response = connection.getresponse()
        response.read()
        samples.append(time.perf_counter() - started)
        time.sleep(0.005)  # pacing: ~150 requests/s, a busy but not saturating client
    connection.close()
    return samples


def _one_job(api: str, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    job_id = _post_json(f"{api}/v1/jobs", body)["job_id"]
    while True:
        job = http_json(f"{api}/v1/jobs/{job_id}", timeout=60)
        if job["state"] in ("done", "failed", "cancelled"):
            if job["state"] != "done":
                raise SystemExit(f"job failed: {job['transitions'][-1]}")
            return time.perf_counter() - started
        time.sleep(0.02)


def _job_loop(api: str, body: dict[str, Any], stop: threading.Event, done: list[float]) -> None:
    while not stop.is_set():
        done.append(_one_job(api, body))


async def _probe_loops(exchange: BlockExchange, peer: str, cid: CID, stop: threading.Event, probers: int) -> int:
    answered = 0

    async def one() -> None:
        nonlocal answered
        while not stop.is_set():
            if await exchange.probe(peer, cid) is None:
                raise SystemExit("node 0 says it does not hold the directory")
            answered += 1
            await asyncio.sleep(0.02)  # each prober asks ~50 times a second at most

    await asyncio.gather(*(one() for _ in range(probers)))
    return answered


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def _run(args: argparse.Namespace, work: Path) -> None:
    tree = work / "tree"
    _make_tree(tree, args.files)
    nodes = cluster_up(2, work / "cluster", regions=["eu", "eu"])
    network = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
    store = BlockStore(work / "prober")
    exchange = BlockExchange(store, network, Metrics())
    try:
        target = nodes[0]
        directory, agent = await asyncio.to_thread(_seed, target.data_dir, tree)
        await network.start()
        await network.connect(target.multiaddr)
        body = {"agent": agent, "inputs": {"in": directory}}
        warm = await asyncio.to_thread(_one_job, target.api_url, body)  # agent compiled, input staged once
        print(f"warm-up job over {args.files} files: {warm:.2f} s")
        idle_p50: list[float] = []
        idle_p99: list[float] = []
        busy_p50: list[float] = []
        busy_p99: list[float] = []
        probes = jobs = 0
        for _ in range(args.rounds):
            idle = await asyncio.to_thread(_latencies, target.api_url, args.seconds)
            idle_p50.append(_p(idle, 0.5))
            idle_p99.append(_p(idle, 0.99))
            stop = threading.Event()
            finished: list[float] = []
            job_thread = threading.Thread(target=_job_loop, args=(target.api_url, body, stop, finished))
            job_thread.start()
            probing = asyncio.create_task(
                _probe_loops(exchange, target.peer_id, CID.parse(directory), stop, args.probers)
            )
            busy = await asyncio.to_thread(_latencies, target.api_url, args.seconds)
            stop.set()
            probes += await probing
            await asyncio.to_thread(job_thread.join)
            jobs += len(finished)
            busy_p50.append(_p(busy, 0.5))
            busy_p99.append(_p(busy, 0.99))

        def row(name: str, values: list[float]) -> str:
            return f"  {name:<28}{statistics.median(values):9.1f}   ({min(values):.1f}-{max(values):.1f})"

        print(f"API latency, GET /v1/openapi.json on node 0, {args.rounds} rounds of {args.seconds:.0f} s each")
        print("                              median ms   (spread over rounds)")
        print(row("idle p50", idle_p50))
        print(row("idle p99 (baseline)", idle_p99))
        print(row("loaded p50", busy_p50))
        print(row("loaded p99", busy_p99))
        ratio = statistics.median(busy_p99) / statistics.median(idle_p99)
        print(f"  loaded/idle p99 ratio       {ratio:9.1f}x    goal: loaded p99 < 50 ms")
        print(f"  loaded windows served {probes} have probes and {jobs} jobs over {args.files} files")
    finally:
        await network.stop()
        exchange_close = getattr(exchange, "close", None)
        if exchange_close is not None:
            exchange_close()
        store.close()
        cluster_down(work / "cluster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--probers", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="leave the work directory (node logs) behind")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mycel-eventloop-bench-"))
    try:
        asyncio.run(_run(args, work))
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
