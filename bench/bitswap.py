"""Bitswap benchmark: a real Helia node fetches a --size-mib file from a node over Bitswap,
against the same transfer between two mycelnet nodes over /mycel/blocks.

Each run uploads fresh random content to node 0 of a 2-node cluster, then times, in
alternation (the order rotated each round so load on a shared machine hits both alike):

   bitswap        Helia (tests/js/bitswap_peer.mjs: js-libp2p TCP + Noise + Yamux, dialled
                  to node 0, no routing) runs ``unixfs.cat`` of the file: every block over
                  /ipfs/bitswap/1.2.0, verified by Helia, kept in its memory blockstore
   /mycel/blocks  node 1 pins the file held by node 0 (``POST /v1/pins``): every block
                  verified and written to LMDB

Median and spread (min-max) of MB/s, CPU seconds of node 0 and of the receiver per run,
and the ratio of the medians. Usage: python bench/bitswap.py [--size-mib 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.stats import cpu_seconds  # noqa: E402
from node.cluster import cluster_down, cluster_up  # noqa: E402

SCRIPT = REPO / "tests" / "js" / "bitswap_peer.mjs"


def _post(url: str, body: bytes | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=900) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@dataclass
class Sample:
    mb_s: float
    cpu_sender: float  # node 0, serving
    cpu_receiver: float  # the Helia process, or node 1


class Helia:
    def __init__(self) -> None:
        node_js = shutil.which("node")
        if node_js is None:
            raise SystemExit("Node.js is needed (make setup)")
        self.proc = subprocess.Popen(
            [node_js, str(SCRIPT)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.call_ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def __call__(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if not answer.get("ok"):
            raise RuntimeError(f"Helia: {answer}")
        return answer

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = args.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="bench-bitswap-"))
    nodes = cluster_up(2, work / "pair")
    source, target = nodes
    helia = Helia()
    try:
        helia(op="dial", addr=source.multiaddr)

        def timed(receiver: int, fetch: Callable[[str], None]) -> Sample:
            cid = _post(f"{source.api_url}/v1/blobs", os.urandom(size))["cid"]
            cpu = cpu_seconds(source.pid), cpu_seconds(receiver)
            started = time.perf_counter()
            fetch(cid)
            seconds = time.perf_counter() - started
            return Sample(size / seconds / 1e6, cpu_seconds(source.pid) - cpu[0], cpu_seconds(receiver) - cpu[1])

        def cat(cid: str) -> None:
            assert helia(op="cat", cid=cid, timeoutMs=600_000)["size"] == size

        def pin(cid: str) -> None:
            _post(f"{target.api_url}/v1/pins/{cid}")

        jobs: dict[str, Callable[[], Sample]] = {
            "bitswap (Helia)": lambda: timed(helia.proc.pid, cat),
            "/mycel/blocks": lambda: timed(target.pid, pin),
        }
        rows: dict[str, list[Sample]] = {name: [] for name in jobs}
        names = list(jobs)
        for index in range(args.runs):
            for name in names[index % 2 :] + names[: index % 2]:
                sample = jobs[name]()
                rows[name].append(sample)
                print(f"    run {index + 1} {name:<16} {sample.mb_s:7.1f} MB/s  CPU s node 0 {sample.cpu_sender:.2f}"
                      f"  receiver {sample.cpu_receiver:.2f}", flush=True)  # fmt: skip
    finally:
        helia.close()
        cluster_down(work / "pair")
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.size_mib} MiB file of random data served by node 0, {args.runs} runs each, alternating")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f}")
    for name in names:
        rates = [sample.mb_s for sample in rows[name]]
        sender = statistics.median(sample.cpu_sender for sample in rows[name])
        receiver = statistics.median(sample.cpu_receiver for sample in rows[name])
        print(f"  {name:<16} {statistics.median(rates):7.1f} MB/s  (min {min(rates):.1f}, max {max(rates):.1f})"
              f"  CPU s node 0 {sender:.2f}, receiver {receiver:.2f}")  # fmt: skip
    medians = [statistics.median(sample.mb_s for sample in rows[name]) for name in names]
    ratio = medians[0] / medians[1]
    print(f"  bitswap / mycel-blocks = {ratio:.2f}")


if __name__ == "__main__":
    main()
