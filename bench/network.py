"""Network benchmark: node-to-node transfer over libp2p against three baselines, convergence, idle RSS.

1. Transfer of a --size-mib DAG of random bytes between two processes, four ways, run in
   alternation (--runs rounds, the order rotated each round) so load on a shared machine
   hits all alike; median and spread (min-max) of MB/s and of CPU seconds per side, and
   mycelnet's ratio to each baseline taken round by round (fresh random data every run):

   mycelnet, bulk CAR
              node 1 of a 2-node cluster pins a DAG held by node 0 (``POST /v1/pins``): the
              whole DAG as one CAR stream over plain HTTP (public data), opened by a ticket
              over libp2p (node/bulk), each block verified once in a thread and stored by the
              write-behind while the next ones travel; the run checks that the CAR path moved
              the bytes (``mycel_fetch_bytes_total{path="car"}``)
   mycelnet, /mycel/blocks
              the same with ``MYCEL_BULK_ENABLED=false``: every block over
              ``/mycel/blocks/1.0.0`` (Noise + Yamux), verified, stored
   (a) plain  the same work without libp2p: asyncio TCP, ChaCha20-Poly1305 in messages of
              Noise's size, the sender reads each block from LMDB and hashes it (as a node's
              verify-on-get does), the receiver hashes each block and commits to LMDB
              (fsync) every 16 blocks: the practical ceiling for a verified store in Python
   (b) libp2p raw py-libp2p, same host setup as a node (Noise only, Yamux, one connection),
              one stream of 1 MiB writes, nothing verified or stored
   (c) Helia  Helia-to-Helia bitswap (bench/js/helia_transfer.mjs, Node.js): two Helia
              processes with TCP + Noise + Yamux only, no bootstrap or routers; the fetcher
              dials the provider and reads the file by CID (blocks in memory, not on disk)

   --code DIR runs the node processes (mycelnet row only) from another checkout, e.g. the
   main branch, for a before/after comparison with everything else equal. --against DIR adds
   a row "/mycel/blocks, before" run from DIR in the same alternation (A/B in one run, the
   ratio taken round by round). --only bulk,blocks,plain,libp2p,helia runs just those rows.
2. Start and convergence of a --nodes cluster started as `mycel cluster up` starts one
   (``node.cluster.cluster_up``: the first node alone, then all others at once), --runs
   times: the time until every node's API answers ("started"), and from then until every
   node lists all others as alive, by signed announcements over gossipsub ("converged").
3. RSS of each idle node process of the last cluster.

--quick: 32 MiB, 2 runs, 3 nodes (a smoke run; its figures mean little).
Usage: python bench/network.py [--size-mib 256] [--runs 3] [--nodes 10] [--code DIR] [--against DIR]
       [--only ROWS] [--skip-convergence] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import node.cluster  # noqa: E402
from bench.stats import alternate, cpu_seconds, machine_note, ratios, spread  # noqa: E402
from node.cluster import cluster_down, cluster_up, free_port  # noqa: E402

HELIA_SCRIPT = REPO / "bench" / "js" / "helia_transfer.mjs"

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


# -- mycelnet: two node processes --------------------------------------------------------
class MycelPair:
    def __init__(self, work: Path, code: Path, bulk: bool, label: str = "") -> None:
        self.directory = work / (("pair-bulk" if bulk else "pair-blocks") + label)
        self.path = "car" if bulk else "blocks"
        self.check = code == REPO  # other node code may count no bytes per path
        here = Path.cwd()
        saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "MYCEL_BULK_ENABLED")}
        os.environ["PYTHONPATH"] = str(code)
        os.environ["MYCEL_BULK_ENABLED"] = "true" if bulk else "false"  # ignored by code without node/bulk
        os.chdir(code)  # `python -m node.cli.main` puts the working directory first on sys.path
        try:
            self.nodes = cluster_up(2, self.directory)
        finally:
            os.chdir(here)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def run(self, size: int) -> Sample:
        source, target = self.nodes
        cid = _post(f"{source.api_url}/v1/blobs", os.urandom(size))["cid"]  # fresh random DAG each run
        moved = _path_bytes(target.api_url, self.path)
        cpu = cpu_seconds(source.pid), cpu_seconds(target.pid)
        started = time.perf_counter()
        _post(f"{target.api_url}/v1/pins/{cid}")
        seconds = time.perf_counter() - started
        used = cpu_seconds(source.pid) - cpu[0], cpu_seconds(target.pid) - cpu[1]
        if self.check and _path_bytes(target.api_url, self.path) - moved < size:
            raise RuntimeError(f"the {self.path} path did not move the DAG (see {self.directory})")
        return Sample(size / seconds / 1e6, *used)

    def close(self) -> None:
        cluster_down(self.directory)


def _path_bytes(api_url: str, path: str) -> float:
    """``mycel_fetch_bytes_total{path=...}`` of a node (0 before its first fetch over that path)."""
    with urllib.request.urlopen(f"{api_url}/metrics", timeout=30) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(f'mycel_fetch_bytes_total{{path="{path}"}} '):
            return float(line.split()[-1])
    return 0.0


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
    return _spawn_argv([sys.executable, "-c", code, *args])


def _spawn_argv(argv: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


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


def helia_missing() -> str | None:
    """Why the Helia baseline cannot run here, or None."""
    if shutil.which("node") is None:
        return "no `node` (Node.js) on PATH"
    if not (REPO / "node_modules" / "helia").is_dir():
        return "no node_modules/helia (run `npm install` in the repository)"
    return None


def helia_run(size: int, work: Path) -> Sample:
    path = Path(tempfile.mkdtemp(dir=work)) / "random.bin"
    try:
        path.write_bytes(os.urandom(size))
        sender = _spawn_argv(["node", str(HELIA_SCRIPT), "provide", str(path)])
        receiver = _spawn_argv(["node", str(HELIA_SCRIPT), "fetch"])
        return _timed_pair(sender, receiver, size, "{ready}", "receiver")
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def summary(name: str, samples: list[Sample]) -> str:
    rates = spread([s.mb_s for s in samples])
    sender = spread([s.cpu_sender for s in samples])
    receiver = spread([s.cpu_receiver for s in samples])
    return f"  {name:<20} {rates.show(1):>22}   {sender.show(2):>18}   {receiver.show(2):>18}"


BULK, BLOCKS, BEFORE = "mycelnet, bulk CAR", "mycelnet, /mycel/blocks", "/mycel/blocks, before"
GOALS = {
    BULK: {"(a) plain": 0.8, "(c) Helia": 2.0},
    BLOCKS: {"(a) plain": 0.5, "(b) libp2p": None, "(c) Helia": 2.0, BEFORE: None},
    BEFORE: {"(a) plain": 0.5},
}
ROWS = ("bulk", "blocks", "plain", "libp2p", "helia")


def bench_transfer(
    size: int, runs: int, work: Path, code: Path, against: Path | None = None, only: frozenset[str] = frozenset(ROWS)
) -> None:
    pairs: list[MycelPair] = []
    jobs: dict[str, Callable[[], Sample]] = {}
    try:
        if "bulk" in only:
            bulk_pair = MycelPair(work, code, bulk=True)
            pairs.append(bulk_pair)
            jobs[BULK] = lambda: bulk_pair.run(size)
        if "blocks" in only:
            pair = MycelPair(work, code, bulk=False)
            pairs.append(pair)
            jobs[BLOCKS] = lambda: pair.run(size)
        if against is not None:
            before = MycelPair(work, against, bulk=False, label="-before")
            pairs.append(before)
            jobs[BEFORE] = lambda: before.run(size)
    except BaseException:
        for started in pairs:
            started.close()
        raise
    if "plain" in only:
        jobs["(a) plain"] = lambda: plain_run(size, work)
    if "libp2p" in only:
        jobs["(b) libp2p"] = lambda: libp2p_run(size, tuned=False)
        jobs["(b') libp2p, tuned"] = lambda: libp2p_run(size, tuned=True)
    missing = helia_missing() if "helia" in only else "not asked for (--only)"
    if missing is None:
        jobs["(c) Helia"] = lambda: helia_run(size, work)

    def progress(index: int, name: str, sample: Sample) -> None:
        print(
            f"    run {index + 1} {name:<20} {sample.mb_s:7.1f} MB/s  CPU s {sample.cpu_sender:.2f}"
            f" / {sample.cpu_receiver:.2f}",
            flush=True,
        )

    try:
        rows = alternate(jobs, runs, progress)
    finally:
        for started in pairs:
            started.close()
    print(f"transfer of a {size >> 20} MiB DAG of random data between two processes, {runs} runs, alternating")
    print(f"  {machine_note()}; node code: {code}")
    if missing is not None:
        print(f"  (c) Helia not run: {missing}")
    print(f"  {'':20} {'MB/s median (min-max)':>22}   {'CPU s sender':>18}   {'CPU s receiver':>18}")
    for name, samples in rows.items():
        print(summary(name, samples))
    for ours_name, goals in GOALS.items():
        if ours_name not in rows:
            continue
        ours = [s.mb_s for s in rows[ours_name]]
        for name, goal in goals.items():
            if name in rows:
                ratio = ratios(ours, [s.mb_s for s in rows[name]])
                wanted = f"  (goal >= {goal})" if goal is not None else ""
                print(f"  {ours_name} / {name:<12} {ratio.show(2)}  round by round{wanted}")


@contextlib.contextmanager
def _marks_all_answering() -> Iterator[list[float]]:
    """While open, the moment ``cluster_up`` has seen every node's API answer is recorded.

    ``cluster_up`` waits for all APIs, then calls ``wait_for_peers`` for each node in turn;
    its first call is that moment. Wrapping the module's function times the real
    `mycel cluster up` code path with nothing else changed.
    """
    marks: list[float] = []
    original = node.cluster.wait_for_peers

    def marking(api_url: str, expected: int, timeout: float) -> None:
        if not marks:
            marks.append(time.perf_counter())
        original(api_url, expected, timeout)

    node.cluster.wait_for_peers = marking
    try:
        yield marks
    finally:
        node.cluster.wait_for_peers = original


@dataclass
class Convergence:
    started: float  # from the call until every node's API answers
    converged: float  # from then until every node lists every other as alive
    rss_mib: list[float]


def convergence_run(count: int, directory: Path, settle: float) -> Convergence:
    try:
        with _marks_all_answering() as marks:
            begun = time.perf_counter()
            nodes = cluster_up(count, directory, timeout=120)
            done = time.perf_counter()
        time.sleep(settle)  # idle for a while before RSS is read: startup garbage collected
        rss = []
        for member in nodes:
            status = Path(f"/proc/{member.pid}/status").read_text()
            match = re.search(r"VmRSS:\s+(\d+)", status)
            rss.append(int(match.group(1)) / 1024 if match else float("nan"))
        return Convergence(marks[0] - begun, done - marks[0], rss)
    finally:
        cluster_down(directory)


def bench_convergence(count: int, runs: int, work: Path, settle: float) -> None:
    results = [convergence_run(count, work / f"many{index}", settle) for index in range(runs)]
    started = spread([r.started for r in results])
    converged = spread([r.converged for r in results])
    print(f"cluster of {count} nodes started as `mycel cluster up` does, {runs} runs; {machine_note()}")
    print(f"  started (every API answering) in {started.show(2)} s")
    print(f"  converged (every node sees all others alive) {converged.show(2)} s after that")
    rss = spread(results[-1].rss_mib)
    print(f"  idle RSS per node (last cluster): median {rss.median:.0f} MiB, {rss.low:.0f}-{rss.high:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose node/ the mycelnet row runs")
    parser.add_argument("--against", type=Path, help="another checkout: its /mycel/blocks row alternates with ours")
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma-separated rows to run, of {','.join(ROWS)}")
    parser.add_argument("--skip-convergence", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 32 MiB, 2 runs, 3 nodes")
    opts = parser.parse_args()
    size_mib, runs, nodes = (32, 2, 3) if opts.quick else (opts.size_mib, opts.runs, opts.nodes)
    if size_mib < 1 or runs < 1 or nodes < 2:
        parser.error("--size-mib and --runs must be at least 1, --nodes at least 2")
    only = frozenset(name.strip() for name in opts.only.split(",") if name.strip())
    if not only <= set(ROWS):
        parser.error(f"--only takes rows of {','.join(ROWS)}, not {','.join(sorted(only - set(ROWS)))}")
    work = Path(tempfile.mkdtemp(prefix="mycel-netbench-"))
    try:
        against = opts.against.resolve() if opts.against is not None else None
        bench_transfer(size_mib << 20, runs, work, opts.code.resolve(), against, only)
        if not opts.skip_convergence:
            bench_convergence(nodes, runs, work, settle=1.0 if opts.quick else 5.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
