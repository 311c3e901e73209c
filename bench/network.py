"""Network benchmark: node-to-node transfer over libp2p against two baselines, convergence, idle RSS.

1. Transfer of a --size-mib DAG of random bytes between two processes, three ways, run in
   alternation (--runs rounds, the order rotated each round) so load on a shared machine
   hits all three alike; median and spread (min-max) of MB/s, CPU seconds per side:

   mycelnet   node 1 of a 2-node cluster pins a DAG held by node 0 (``POST /v1/pins``):
              every block over ``/mycel/blocks/1.0.0`` (Noise + Yamux), verified, stored
   (a) plain  the same work without libp2p: asyncio TCP, ChaCha20-Poly1305 in messages of
              Noise's size, the sender reads each block from LMDB and hashes it (as a node's
              verify-on-get does), the receiver hashes each block and commits to LMDB
              (fsync) every 16 blocks: the practical ceiling for a verified store in Python
   (b) libp2p raw py-libp2p, same host setup as a node (Noise only, Yamux, one connection),
              one stream of 1 MiB writes, nothing verified or stored

   --code DIR runs the node processes (mycelnet row only) from another checkout, e.g. the
   main branch, for a before/after comparison with everything else equal.
2. Convergence: time until every node of a --nodes cluster lists all others as alive
   (signed announcements over gossipsub), measured from the moment the last one started.
3. RSS of each idle node process.

Usage: python bench/network.py [--size-mib 256] [--runs 3] [--nodes 10] [--code DIR] [--skip-convergence]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node.cluster import cluster_down, cluster_up, free_port  # noqa: E402

BLOCK = 256 << 10


@dataclass
class Sample:
    mb_s: float
    cpu_sender: float
    cpu_receiver: float


def _post(url: str, body: bytes | None = None) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=900) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- mycelnet: two node processes --------------------------------------------------------
class MycelPair:
    def __init__(self, work: Path, code: Path) -> None:
        self.work = work
        here = Path.cwd()
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(code)
        os.chdir(code)  # `python -m node.cli.main` puts the working directory first on sys.path
        try:
            self.nodes = cluster_up(2, work / "pair")
        finally:
            os.chdir(here)
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved

    def run(self, size: int) -> Sample:
        source, target = self.nodes
        cid = _post(f"{source.api_url}/v1/blobs", os.urandom(size))["cid"]  # fresh random DAG each run
        cpu = cpu_seconds(source.pid), cpu_seconds(target.pid)
        started = time.perf_counter()
        _post(f"{target.api_url}/v1/pins/{cid}")
        seconds = time.perf_counter() - started
        return Sample(size / seconds / 1e6, cpu_seconds(source.pid) - cpu[0], cpu_seconds(target.pid) - cpu[1])

    def close(self) -> None:
        cluster_down(self.work / "pair")


# -- baselines: a pair of helper processes, timed from outside -----------------------------
# Each side prints "ready" once set up, waits for "go" on stdin, does the transfer, prints
# "done", and waits for stdin to close: CPU is read from /proc between "go" and "done".

_PLAIN_SENDER = r"""
import asyncio, hashlib, os, struct, sys, lmdb
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
size, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
BLOCK, MSG = 256 << 10, 65519
env = lmdb.open(path, map_size=4 << 30, max_dbs=1)
keys = []
with env.begin(write=True) as txn:
    for i in range(size // BLOCK):
        data = os.urandom(BLOCK); key = hashlib.sha256(data).digest(); txn.put(key, data); keys.append(key)
cipher = ChaCha20Poly1305(b"k" * 32)
async def serve(reader, writer):
    nonce = 0
    with env.begin(buffers=True) as txn:
        for key in keys:
            data = bytes(txn.get(key))
            assert hashlib.sha256(data).digest() == key  # verify on the way out, as a node does
            payload = struct.pack(">I", len(key)) + key + data
            for i in range(0, len(payload), MSG):
                sealed = cipher.encrypt(nonce.to_bytes(12, "little"), payload[i:i + MSG], None); nonce += 1
                writer.write(struct.pack(">H", len(sealed)) + sealed)
            await writer.drain()
    writer.close(); await writer.wait_closed()
    print("done", flush=True)
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""

_PLAIN_RECEIVER = r"""
import asyncio, hashlib, struct, sys, lmdb
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
size, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
BLOCK = 256 << 10
env = lmdb.open(path, map_size=4 << 30, max_dbs=1, sync=True)
cipher = ChaCha20Poly1305(b"k" * 32)
async def main():
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    nonce, buffer, pending, received = 0, bytearray(), [], 0
    while True:
        try:
            head = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            break
        sealed = await reader.readexactly(struct.unpack(">H", head)[0])
        buffer += cipher.decrypt(nonce.to_bytes(12, "little"), sealed, None); nonce += 1
        while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(">I", buffer[:4])[0] + BLOCK:
            klen = struct.unpack(">I", buffer[:4])[0]
            key, data = bytes(buffer[4:4 + klen]), bytes(buffer[4 + klen:4 + klen + BLOCK])
            del buffer[:4 + klen + BLOCK]
            assert hashlib.sha256(data).digest() == key, "corrupt block"
            pending.append((key, data)); received += len(data)
            if len(pending) == 16:
                with env.begin(write=True) as txn:
                    for k, d in pending: txn.put(k, d)
                pending = []
    if pending:
        with env.begin(write=True) as txn:
            for k, d in pending: txn.put(k, d)
    assert received == size, received
    print("done", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""

# py-libp2p runs on trio; anyio picks it (only node/p2p/bridge.py imports trio in this repo).
_LIBP2P_SIDE = r"""
import sys, anyio, multiaddr
role, size, port, seed, tuned = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
if tuned:
    from node.p2p import tuning; tuning.apply()
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as x25519
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID, Transport
PROTO = TProtocol("/bench/raw/1.0.0")
def make_host(seed):
    keys = create_new_key_pair(seed.encode().ljust(32, b"\0"))
    noise = Transport(libp2p_keypair=keys, noise_privkey=x25519().private_key, early_data=None)
    return new_host(key_pair=keys, sec_opt={PROTOCOL_ID: noise}, muxer_preference="YAMUX",
                    connection_config=ConnectionConfig(max_connections_per_peer=1))
async def wait_stdin(line=True):
    await anyio.to_thread.run_sync(sys.stdin.readline if line else sys.stdin.read)
async def main():
    host = make_host(seed)
    addr = multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port if role == 'sender' else 0}")
    async with host.run(listen_addrs=[addr]):
        if role == "sender":
            chunk = bytes(1 << 20)
            async def handler(stream):
                for _ in range(size >> 20):
                    await stream.write(chunk)
                await stream.close()
                print("done", flush=True)
            host.set_stream_handler(PROTO, handler)
            print("ready", host.get_id().to_base58(), flush=True)
            await wait_stdin(line=False)
        else:
            print("ready", flush=True)
            target = sys.stdin.readline().split()[1]
            info = info_from_p2p_addr(multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/p2p/{target}"))
            await host.connect(info)
            stream = await host.new_stream(info.peer_id, [PROTO])
            received = 0
            while True:
                try:
                    data = await stream.read(1 << 20)
                except StreamEOF:
                    break
                if not data:
                    break
                received += len(data)
            assert received == size, received
            print("done", flush=True)
            await wait_stdin(line=False)
anyio.run(main, backend="trio")
"""


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def _expect(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(word):
        raise RuntimeError(f"helper process said {line!r} instead of {word!r} (exit {proc.poll()})")
    return line


def _timed_pair(
    sender: subprocess.Popen[str], receiver: subprocess.Popen[str], size: int, go: str, done_by: str
) -> Sample:
    """Both sides ready: start the receiver, wait for ``done_by`` side(s) to finish, read CPU."""
    assert sender.stdin is not None and receiver.stdin is not None
    try:
        ready = _expect(sender, "ready")
        _expect(receiver, "ready")
        cpu = cpu_seconds(sender.pid), cpu_seconds(receiver.pid)
        started = time.perf_counter()
        receiver.stdin.write(go.format(ready=ready.strip()) + "\n")
        receiver.stdin.flush()
        _expect(receiver, "done")
        seconds = time.perf_counter() - started
        if done_by == "both":
            _expect(sender, "done")
        used = cpu_seconds(sender.pid) - cpu[0], cpu_seconds(receiver.pid) - cpu[1]
    finally:
        for proc in (sender, receiver):
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return Sample(size / seconds / 1e6, *used)


def plain_run(size: int, work: Path) -> Sample:
    port = free_port()
    directory = Path(tempfile.mkdtemp(dir=work))
    try:
        sender = _spawn(_PLAIN_SENDER, str(size), str(port), str(directory / "send"))
        receiver = _spawn(_PLAIN_RECEIVER, str(size), str(port), str(directory / "recv"))
        return _timed_pair(sender, receiver, size, "go", "both")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def libp2p_run(size: int, tuned: bool) -> Sample:
    port = free_port()
    flag = "1" if tuned else "0"
    sender = _spawn(_LIBP2P_SIDE, "sender", str(size), str(port), "bench-sender", flag)
    receiver = _spawn(_LIBP2P_SIDE, "receiver", str(size), str(port), "bench-receiver", flag)
    return _timed_pair(sender, receiver, size, "{ready}", "receiver")


def summary(name: str, samples: list[Sample]) -> str:
    rates = [s.mb_s for s in samples]
    return (
        f"  {name:<26} {statistics.median(rates):7.1f} MB/s  (min {min(rates):.1f}, max {max(rates):.1f})"
        f"   CPU s sender {statistics.median(s.cpu_sender for s in samples):5.2f}"
        f"  receiver {statistics.median(s.cpu_receiver for s in samples):5.2f}"
    )


def bench_transfer(size: int, runs: int, work: Path, code: Path) -> None:
    pair = MycelPair(work, code)
    rows: dict[str, list[Sample]] = {"mycelnet": [], "(a) plain": [], "(b) libp2p": [], "(b') libp2p, tuned": []}
    jobs = {
        "mycelnet": lambda: pair.run(size),
        "(a) plain": lambda: plain_run(size, work),
        "(b) libp2p": lambda: libp2p_run(size, tuned=False),
        "(b') libp2p, tuned": lambda: libp2p_run(size, tuned=True),
    }
    names = list(jobs)
    try:
        for index in range(runs):
            order = names[index % len(names) :] + names[: index % len(names)]
            for name in order:
                sample = jobs[name]()
                rows[name].append(sample)
                print(
                    f"    run {index + 1} {name:<20} {sample.mb_s:7.1f} MB/s  CPU s {sample.cpu_sender:.2f}"
                    f" / {sample.cpu_receiver:.2f}",
                    flush=True,
                )
    finally:
        pair.close()
    print(f"transfer of a {size >> 20} MiB DAG of random data between two processes, {runs} runs, alternating")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f}; node code: {code}")
    for name in names:
        print(summary(name, rows[name]))
    ours = statistics.median(s.mb_s for s in rows["mycelnet"])
    plain = statistics.median(s.mb_s for s in rows["(a) plain"])
    print(f"  mycelnet / (a) = {ours / plain:.2f}  (goal >= 0.5)")


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
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose node/ the mycelnet row runs")
    parser.add_argument("--skip-convergence", action="store_true")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mycel-netbench-"))
    try:
        bench_transfer(opts.size_mib << 20, opts.runs, work, opts.code.resolve())
        if not opts.skip_convergence:
            converged, rss = bench_convergence(opts.nodes, work)
            print(f"announcement convergence, {opts.nodes} nodes: {converged:.2f} s after the last node started")
            print(f"idle RSS per node: median {sorted(rss)[len(rss) // 2]:.0f} MiB, max {max(rss):.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
