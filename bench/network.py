"""Network benchmark: block exchange vs raw TCP, announcement convergence, idle RSS.

1. A DAG of --size-mib random bytes is uploaded to node 0 of a 2-node cluster; node 1
   is asked to pin it (``POST /v1/pins/{cid}``), which fetches every block over
   ``/mycel/blocks/1.0.0`` and verifies it. Baseline, same run: the same number of
   bytes sent over a raw asyncio TCP connection between two processes.
2. Convergence: time until every node of a --nodes cluster lists all others as alive
   (signed announcements over gossipsub), measured from the moment the last one started.
3. RSS of each idle node process.

Usage: python bench/network.py [--size-mib 256] [--nodes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node.cluster import cluster_down, cluster_up, free_port  # noqa: E402


def _post(url: str, body: bytes | None = None, content_type: str = "application/octet-stream") -> dict[str, object]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def bench_exchange(size: int, work: Path) -> tuple[float, float]:
    nodes = cluster_up(2, work / "pair")
    try:
        source = work / "data.bin"
        with open(source, "wb") as out:
            for _ in range(0, size, 8 << 20):
                out.write(os.urandom(8 << 20))
        with open(source, "rb") as stream:
            cid = _post(f"{nodes[0].api_url}/v1/blobs", stream.read())["cid"]
        started = time.perf_counter()
        _post(f"{nodes[1].api_url}/v1/pins/{cid}")
        exchange_seconds = time.perf_counter() - started
    finally:
        cluster_down(work / "pair")
    return size / exchange_seconds / 1e6, _raw_tcp_rate(size)


_TCP_SERVER = """
import asyncio, os, sys
size = int(sys.argv[1]); port = int(sys.argv[2])
block = os.urandom(1 << 20)
async def handle(reader, writer):
    sent = 0
    while sent < size:
        writer.write(block); sent += len(block)
        await writer.drain()
    writer.close(); await writer.wait_closed(); server.close()
async def main():
    global server
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        try:
            await server.serve_forever()
        except asyncio.CancelledError:
            pass
asyncio.run(main())
"""


def _raw_tcp_rate(size: int) -> float:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", _TCP_SERVER, str(size), str(port)], stdout=subprocess.PIPE)
    assert server.stdout is not None
    server.stdout.readline()

    async def receive() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.perf_counter()
        received = 0
        while chunk := await reader.read(1 << 20):
            received += len(chunk)
        writer.close()
        return received / (time.perf_counter() - started) / 1e6

    try:
        return asyncio.run(receive())
    finally:
        server.kill()
        server.wait()


def bench_convergence(count: int, work: Path) -> tuple[float, list[float]]:
    from node.cluster import ClusterNode, start_node_process, wait_for_peers, write_cluster_file
    from node.identity import load_or_create

    directory = work / "many"
    nodes: list[ClusterNode] = []
    try:
        for index in range(count):
            data_dir = directory / f"node{index}"
            peer_id = load_or_create(data_dir).peer_id
            listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
            api = f"127.0.0.1:{free_port()}"
            proc = start_node_process(data_dir, listen, api, [n.multiaddr for n in nodes[:3]], f"r{index}")
            nodes.append(
                ClusterNode(
                    index,
                    proc.pid,
                    peer_id,
                    f"http://{api}",
                    f"{listen}/p2p/{peer_id}",
                    str(data_dir),
                    f"r{index}",
                    listen,
                    api,
                )
            )
            write_cluster_file(directory, nodes)
        last_started = time.perf_counter()
        for node in nodes:
            wait_for_peers(node.api_url, count - 1, timeout=120)
        converged = time.perf_counter() - last_started
        time.sleep(5)
        rss = []
        for node in nodes:
            status = Path(f"/proc/{node.pid}/status").read_text()
            match = re.search(r"VmRSS:\s+(\d+)", status)
            rss.append(int(match.group(1)) / 1024 if match else float("nan"))
        return converged, rss
    finally:
        cluster_down(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--nodes", type=int, default=10)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mycel-netbench-"))
    try:
        ours, raw = bench_exchange(opts.size_mib << 20, work)
        print(f"block exchange of a {opts.size_mib} MiB DAG between two node processes (fetch + verify + store)")
        print(f"  mycelnet {ours:8.1f} MB/s   raw asyncio TCP {raw:8.1f} MB/s   ratio {ours / raw:.3f}")
        converged, rss = bench_convergence(opts.nodes, work)
        print(f"announcement convergence, {opts.nodes} nodes: {converged:.2f} s after the last node started")
        print(f"idle RSS per node: median {sorted(rss)[len(rss) // 2]:.0f} MiB, max {max(rss):.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
