"""Stream append latency: local appends and append-to-replica, against an in-process baseline.

A 2-node cluster (real processes, real libp2p on 127.0.0.1); B replicates A's stream. Each
round runs, alternately:

* baseline: the irreducible work in this process: sign one entry (Ed25519), verify it,
  write it to LMDB in its own transaction;
* local: the SDK signs one entry and appends it to A over HTTP (A verifies, checks the
  chain, writes LMDB in a thread, answers);
* replica: the same append to A, then B asked to pull now (``POST .../subscribe``): B
  requests the entries over /mycel/stream/1.0.0, verifies signature and chain, stores them.
  (Without that request B pulls within its 2 s poll.)
* pull-idle: B asked to pull when A has nothing new (one libp2p request, no write).

Usage: python bench/streams.py [--rounds 200] [--payload 256]

``--triggers`` measures instead the append-to-output latency of a stream trigger (every
entry) on one node, in process over the real stream service, trigger service, executor and
LMDB stores: from the input entry's append to the output entry in the trigger's output
stream, for a wasm agent and a warm-python agent, alternating with the same agent called
directly through the executor on an equivalent batch (what the trigger adds is the gap).

Usage: python bench/streams.py --triggers [--rounds 100]

``--sustained`` measures throughput instead: one real node process, a stream trigger (warm
python agent folding a count, batches of up to 256 entries every 100 ms) and a writer appending
at ``--rate`` entries/s in batches of 128 for ``--seconds``; it prints the entries/s the trigger
consumed, the backlog at the end (head - cursor: it must not grow) and the node's RSS
(/proc/PID/status VmRSS) at start, end and max.

Usage: python bench/streams.py --sustained [--seconds 60] [--rate 1200]

``--cross`` measures append-to-output latency across two nodes: a 2-node cluster (real
processes, real libp2p on 127.0.0.1, the nodes' own fallback poll as configured: 2 s); the
writer appends to a stream at A; B replicates it (live replication: A notices B, B pulls and
verifies) and a stream trigger on B (every entry) appends the agent's output to its output
stream on B. Each round alternates, for a wasm and a warm-python agent, that path with the
baseline of the same agent's trigger on A over a stream appended at A (same node). Arrival is
seen through SSE tails (GET .../tail) of the output streams, and of B's replica for the
append-to-replica lag; the tail adds the same on both sides.

Then, for ``--seconds`` (default 20 here), the writer appends at ``--rate`` entries/s in batches
of 128 at A and the bench samples once a second how far B's replica is behind A's head, and
counts the head notices A sent and the entries B replicated (their /metrics): the replication
lag must stay flat, and the notices per entry show the coalescing.

Usage: python bench/streams.py --cross [--rounds 100] [--seconds 20] [--rate 1200]

``--concurrent`` measures throughput of concurrent single appends: ``--writers`` writers, each
its own stream, each appending one entry at a time over HTTP to one node process for
``--seconds`` a round (and one writer alone, for the uncontended latency). With ``--before
TREE`` (a checkout of another commit, e.g. ``git worktree add /tmp/before HEAD~1``) a second
node runs that tree's code and the rounds alternate between the two: the A/B of a change to
the append path, measured in the same run.

Usage: python bench/streams.py --concurrent [--writers 16] [--seconds 5] [--rounds 3] [--before TREE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import lmdb  # noqa: E402
import nacl.signing  # noqa: E402

from bench.stats import code_of, rss_mib  # noqa: E402
from node.cluster import cluster_down, cluster_up  # noqa: E402
from sdk import Client  # noqa: E402
from storage.cid import CID, DAG_CBOR  # noqa: E402
from storage.streamentry import sign_entry, verify_entry  # noqa: E402


def _summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    median = statistics.median(ordered) * 1000
    return f"{name:<16} n={len(samples):<5} median {median:7.2f} ms   p99 {p99 * 1000:7.2f} ms"


async def run(rounds: int, payload_size: int, work: Path) -> None:
    nodes = cluster_up(2, work / "cluster", timeout=60)
    a, b = nodes
    env = lmdb.open(str(work / "baseline"), map_size=256 << 20)
    key = nacl.signing.SigningKey(os.urandom(32))
    payload = os.urandom(payload_size)
    samples: dict[str, list[float]] = {"baseline": [], "local": [], "replica": [], "pull-idle": []}
    try:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            local, replicated = at_a.stream("bench-local", key), at_a.stream("bench-replica", key)
            await local.append(payload)
            await replicated.append(payload)
            await at_b._call("POST", f"/v1/streams/{replicated.id}/subscribe", json={"peer": a.peer_id})
            prev = None
            for seq in range(1, rounds + 1):
                started = time.perf_counter()
                raw = sign_entry(key, "bench-base", seq, prev, payload, int(time.time() * 1000))
                entry = verify_entry(raw)
                with env.begin(write=True) as txn:
                    txn.put(seq.to_bytes(8, "big"), raw)
                prev = CID.for_block(raw, DAG_CBOR)
                samples["baseline"].append(time.perf_counter() - started)
                assert entry.seq == seq

                started = time.perf_counter()
                await local.append(payload)
                samples["local"].append(time.perf_counter() - started)

                started = time.perf_counter()
                answer = await replicated.append(payload)
                pulled = await at_b._call("POST", f"/v1/streams/{replicated.id}/subscribe", json={"peer": a.peer_id})
                samples["replica"].append(time.perf_counter() - started)
                assert pulled["head_seq"] == answer["head_seq"]

                started = time.perf_counter()  # B asks A with nothing new: the libp2p round trip and reads
                await at_b._call("POST", f"/v1/streams/{replicated.id}/subscribe", json={"peer": a.peer_id})
                samples["pull-idle"].append(time.perf_counter() - started)
    finally:
        env.close()
        cluster_down(work / "cluster")
    print(f"stream append latency, {rounds} rounds, {payload_size}-byte payloads, alternating")
    for name, values in samples.items():
        print(_summary(name, values))


# the wasm scaffold's agent, reading /in/batch and writing /out/output (same-length names: 'input' -> 'batch')
def _wasm_agent(directory: Path) -> Path:
    import wasmtime

    from node.cli.wat_template import UPPERCASE_WAT

    source = UPPERCASE_WAT.replace('"input"', '"batch"').replace('"upper.txt"', '"output"')
    source = source.replace("(i32.const 48) (i32.const 9) (i32.const 9)", "(i32.const 48) (i32.const 6) (i32.const 9)")
    directory.mkdir(parents=True)
    (directory / "agent.wasm").write_bytes(bytes(wasmtime.wat2wasm(source)))
    (directory / "mycel-agent.toml").write_text(
        'name = "bench-wasm"\nversion = "1.0.0"\nruntime = "wasm"\nentrypoint = "agent.wasm"\n'
    )
    return directory


_PYTHON_AGENT = """import os
data = open(os.path.join(os.environ["MYCEL_IN"], "batch"), "rb").read()
open(os.path.join(os.environ["MYCEL_OUT"], "output"), "wb").write(data.upper())
"""


def _python_agent(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "main.py").write_text(_PYTHON_AGENT)
    (directory / "mycel-agent.toml").write_text(
        'name = "bench-python"\nversion = "1.0.0"\nruntime = "python"\nentrypoint = "main.py"\n'
    )
    return directory


async def run_triggers(rounds: int, payload_size: int, work: Path) -> None:
    from typing import Any, cast

    from agents.bundle import pack
    from agents.executor import Executor
    from agents.reaper import Reaper
    from agents.runtime.base import RunRequest
    from agents.runtime.python import PythonRuntime
    from agents.runtime.wasm import WasmRuntime
    from node.metrics import Metrics
    from node.streams.service import StreamService
    from node.streams.store import StreamStore
    from node.triggers.invocation import batch_document
    from node.triggers.model import TriggerKind, TriggerSpec
    from node.triggers.service import TriggerService
    from node.triggers.store import TriggerStore
    from storage.blockstore import BlockStore
    from storage.files import add_stream

    class Network:
        async def peers(self) -> list[str]:
            return []

    import io

    store = BlockStore(work / "blocks")
    metrics = Metrics()
    streams = StreamService(StreamStore(work / "streams"), cast(Any, Network()), metrics)
    warm = PythonRuntime(warm=True)
    (work / "work").mkdir()
    runtimes = {"wasm": WasmRuntime(work / "wasm-cache"), "python": warm}
    reaper = Reaper()  # as the node builds its trigger executor
    executor = Executor(store, runtimes, nacl.signing.SigningKey(os.urandom(32)), work / "work", reaper=reaper)  # type: ignore[arg-type]
    triggers = TriggerService(TriggerStore(work / "triggers"), streams, store, executor, metrics, 2)
    await triggers.start()
    agents = {"wasm": pack(_wasm_agent(work / "wasm"), store), "python": pack(_python_agent(work / "py"), store)}
    key = nacl.signing.SigningKey(os.urandom(32))
    payload = os.urandom(payload_size // 2).hex().encode()[:payload_size]
    samples: dict[str, list[float]] = {}
    try:
        for kind, bundle in agents.items():
            name = f"in-{kind}"
            writer_seq, prev = 0, None

            async def append(name: str = name) -> None:
                nonlocal writer_seq, prev
                writer_seq += 1
                raw = sign_entry(key, name, writer_seq, prev, payload, int(time.time() * 1000))
                prev = CID.for_block(raw, DAG_CBOR)
                await streams.append(verify_entry(raw).stream, [raw])

            await append()
            stream = verify_entry(sign_entry(key, name, 1, None, payload, 0)).stream
            spec = TriggerSpec(f"t-{kind}", bundle.agent_id, TriggerKind.STREAM, stream, output=f"out-{kind}")
            await triggers.deploy(spec)
            output = triggers.output_stream(spec.name)
            while (await asyncio.to_thread(streams.store.info, output)) is None:  # the first entry's run
                changed = streams.changed(output)
                if await asyncio.to_thread(streams.store.info, output) is None:
                    await changed.wait()
            through, direct = samples.setdefault(f"{kind} trigger", []), samples.setdefault(f"{kind} direct", [])
            for n in range(1, rounds + 1):
                changed = streams.changed(output)  # taken before the append: the output's entry sets it
                started = time.perf_counter()
                await append()
                await changed.wait()
                through.append(time.perf_counter() - started)
                started = time.perf_counter()
                entries = await streams.since(stream, writer_seq - 1, 1)
                batch = add_stream(store, io.BytesIO(batch_document(stream, entries)), pin=False).cid
                done = await asyncio.to_thread(executor.run, RunRequest(f"direct-{kind}-{n}", bundle, {"batch": batch}))
                direct.append(time.perf_counter() - started)
                assert done.outcome.is_ok, done.outcome
    finally:
        await triggers.stop()
        reaper.close()
        warm.close()
        triggers.store.close()
        streams.store.close()
        store.close()
    print(f"stream trigger append-to-output latency (every entry), {rounds} rounds each, alternating A/B, one node")
    for name, values in samples.items():
        print(_summary(name, values))


_COUNT_AGENT = """import json, os
inp, out = os.environ["MYCEL_IN"], os.environ["MYCEL_OUT"]
count = int(open(os.path.join(inp, "state")).read()) if os.path.exists(os.path.join(inp, "state")) else 0
count += len(json.load(open(os.path.join(inp, "batch")))["entries"])
open(os.path.join(out, "state"), "w").write(str(count))
open(os.path.join(out, "output"), "w").write(str(count))
"""


def _anon_mib(pid: int) -> float:
    """The anonymous part of RSS (the heap: where a growing queue would show). VmRSS also counts
    the LMDB files' pages the node touched, which grow with the data it stores, not with a queue."""
    return rss_mib(pid, "RssAnon")


async def run_sustained(seconds: float, rate: float, payload_size: int, work: Path) -> None:
    [node] = cluster_up(1, work / "cluster", timeout=60)
    agent = work / "count"
    agent.mkdir()
    (agent / "main.py").write_text(_COUNT_AGENT)
    (agent / "mycel-agent.toml").write_text(
        'name = "bench-count"\nversion = "1.0.0"\nruntime = "python"\nentrypoint = "main.py"\n'
    )
    payload = os.urandom(payload_size // 2).hex().encode()[:payload_size]
    per_batch, rss, anon, progress = 128, [], [], []
    try:
        async with Client(node.api_url) as client:
            await client.deploy(agent)
            stream = client.stream("bench-sustained", nacl.signing.SigningKey(os.urandom(32)))
            await stream.append(payload)
            await client.deploy_trigger("count", "bench-count", "stream", stream=stream.id, every_ms=100, output="n")
            rss.append(rss_mib(node.pid))
            anon.append(_anon_mib(node.pid))
            started = time.monotonic()
            sent, next_sample = 1, started + 1.0
            while (now := time.monotonic()) < started + seconds:
                due = int((now - started) * rate) + 1 - sent
                if due > 0:
                    batch = min(due, per_batch)
                    await stream.append(*[payload] * batch)
                    sent += batch
                else:
                    await asyncio.sleep(0.01)
                if now >= next_sample:
                    cursor = (await client.triggers.get("count"))["cursor"]["seq"]
                    progress.append((now - started, cursor, sent))
                    rss.append(rss_mib(node.pid))
                    anon.append(_anon_mib(node.pid))
                    next_sample += 1.0
            end = time.monotonic() - started
            cursor = (await client.triggers.get("count"))["cursor"]["seq"]
            rss.append(rss_mib(node.pid))
            anon.append(_anon_mib(node.pid))
    finally:
        cluster_down(work / "cluster")
    half = next((p for p in progress if p[0] >= seconds / 2), progress[0])
    steady = (cursor - half[1]) / (end - half[0])
    backlog = [sent_ - seen for _, seen, sent_ in progress]
    print(f"sustained stream trigger, {seconds:.0f} s at {rate:.0f} entries/s offered ({payload_size}-byte payloads),"
          f" one node, warm python agent, batches <= 256")  # fmt: skip
    print(f"appended {sent} entries ({sent / end:.0f}/s), consumed {cursor} ({cursor / end:.0f}/s overall, "
          f"{steady:.0f}/s in the second half)")  # fmt: skip
    print(f"backlog (appended - consumed) per 10 s: {backlog[::10]}; at the end {sent - cursor}")
    print(f"node RSS MiB: start {rss[0]:.0f}, end {rss[-1]:.0f}, max {max(rss):.0f}; anonymous (heap) start"
          f" {anon[0]:.0f}, at 30 s {anon[len(anon) // 2]:.0f}, end {anon[-1]:.0f}, max {max(anon):.0f}")  # fmt: skip


async def _follow(client: Client, stream: str, arrivals: asyncio.Queue[tuple[float, int]]) -> None:
    """Put (arrival time, seq) for each new entry of ``stream`` (it must exist) as the tail sees it."""
    head = (await client.stream_reader(stream).info())["head_seq"]
    async for entry in client.stream_reader(stream).tail(after=head):
        arrivals.put_nowait((time.perf_counter(), entry.seq))


async def _exists(client: Client, stream: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.stream_reader(stream).info())["head_seq"] >= 1:
                return
        except Exception:  # 404 until the trigger's first output
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def run_cross(rounds: int, payload_size: int, seconds: float, rate: float, work: Path) -> None:
    nodes = cluster_up(2, work / "cluster", timeout=60)
    a, b = nodes
    load_before = os.getloadavg()
    key = nacl.signing.SigningKey(os.urandom(32))
    payload = os.urandom(payload_size // 2).hex().encode()[:payload_size]
    agents = {"wasm": _wasm_agent(work / "wasm"), "python": _python_agent(work / "py")}
    samples: dict[str, list[float]] = {}
    tails: list[asyncio.Task[None]] = []
    try:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            routes = []  # (label, writer, where its output appears, output stream)
            replica: asyncio.Queue[tuple[float, int]] = asyncio.Queue()
            for kind, directory in agents.items():
                await at_a.deploy(directory)
                await at_b.deploy(directory)
                cross, local = at_a.stream(f"cross-{kind}", key), at_a.stream(f"local-{kind}", key)
                await cross.append(payload)
                await local.append(payload)
                await at_b._call("POST", f"/v1/streams/{cross.id}/subscribe", json={"peer": a.peer_id})
                agent = f"bench-{kind}"
                on_b = await at_b.deploy_trigger(f"x-{kind}", agent, "stream", stream=cross.id, output=f"x-{kind}")
                on_a = await at_a.deploy_trigger(f"l-{kind}", agent, "stream", stream=local.id, output=f"l-{kind}")
                routes.append((f"{kind} across", cross, at_b, on_b["output_stream"]))
                routes.append((f"{kind} same-node", local, at_a, on_a["output_stream"]))
                if kind == "wasm":
                    tails.append(asyncio.create_task(_follow(at_b, cross.id, replica)))
            queues: dict[str, asyncio.Queue[tuple[float, int]]] = {}
            for label, _, client, output in routes:
                await _exists(client, output)  # the first entry's run
                queues[label] = asyncio.Queue()
                tails.append(asyncio.create_task(_follow(client, output, queues[label])))
            await asyncio.sleep(1.0)  # the tails are open
            for _ in range(rounds):
                for label, writer, _, _ in routes:  # alternating: across, same node, for each agent
                    started = time.perf_counter()
                    await writer.append(payload)
                    arrived, _seq = await asyncio.wait_for(queues[label].get(), 30)
                    samples.setdefault(label, []).append(arrived - started)
                    if label == "wasm across":
                        at_replica, _seq = await asyncio.wait_for(replica.get(), 30)
                        samples.setdefault("append to replica", []).append(at_replica - started)
            lags, notices, replicated, offered = await _replicate_sustained(
                at_a, at_b, a.peer_id, key, seconds, rate, payload
            )
    finally:
        for task in tails:
            task.cancel()
        cluster_down(work / "cluster")
    load_after = os.getloadavg()
    print(f"append at A to trigger output, {rounds} rounds each, {payload_size}-byte payloads, alternating;"
          f" load {load_before[0]:.2f} -> {load_after[0]:.2f}")  # fmt: skip
    for name, values in samples.items():
        print(_summary(name, values))
    for kind in agents:
        across, same = statistics.median(samples[f"{kind} across"]), statistics.median(samples[f"{kind} same-node"])
        print(f"{kind}: across / same-node median {across / same:.2f}x (+{(across - same) * 1000:.1f} ms)")
    print(f"sustained: {offered / seconds:.0f} entries/s appended at A for {seconds:.0f} s; B replicated"
          f" {replicated:.0f} ({replicated / seconds:.0f}/s); A sent {notices:.0f} head notices"
          f" ({notices / max(replicated, 1):.3f} per entry); B behind A (entries), each second: {lags}")  # fmt: skip


def _metric(text: str, name: str) -> float:
    """A counter's value in a /metrics page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(f"mycel_{name} ") or line.startswith(f"mycel_{name}{{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _replicate_sustained(
    at_a: Client, at_b: Client, a_peer: str, key: nacl.signing.SigningKey, seconds: float, rate: float, payload: bytes
) -> tuple[list[int], float, float, int]:
    """Append at ``rate`` at A for ``seconds`` to a stream B replicates: (lag samples, notices, replicated, sent)."""
    stream = at_a.stream("cross-sustained", key)
    await stream.append(payload)
    await at_b._call("POST", f"/v1/streams/{stream.id}/subscribe", json={"peer": a_peer})

    async def counters() -> tuple[float, float]:
        async with at_a._http().get(f"{at_a.url}/metrics") as response:
            on_a = await response.text()
        async with at_b._http().get(f"{at_b.url}/metrics") as response:
            on_b = await response.text()
        return _metric(on_a, "stream_notices_sent_total"), _metric(on_b, "stream_entries_replicated_total")

    notices0, replicated0 = await counters()
    lags: list[int] = []
    started = time.monotonic()
    sent, next_sample = 1, started + 1.0
    while (now := time.monotonic()) < started + seconds:
        due = int((now - started) * rate) + 1 - sent
        if due > 0:
            batch = min(due, 128)
            await stream.append(*[payload] * batch)
            sent += batch
        else:
            await asyncio.sleep(0.01)
        if now >= next_sample:
            lags.append(sent - (await at_b.stream_reader(stream.id).info())["head_seq"])
            next_sample += 1.0
    deadline = time.monotonic() + 10
    while (await at_b.stream_reader(stream.id).info())["head_seq"] < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    notices1, replicated1 = await counters()
    return lags, notices1 - notices0, replicated1 - replicated0, sent - 1


def _node_from(tree: Path, directory: Path) -> Any:
    """One node process running the code of ``tree``."""
    with code_of(tree):
        [node] = cluster_up(1, directory, timeout=60)
    return node


async def _flood(client: Client, streams: list[Any], seconds: float, payload: bytes) -> tuple[int, list[float]]:
    """Each stream's writer appends one entry at a time for ``seconds``: (entries, latencies)."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    async def writer(stream: Any) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await stream.append(payload)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(writer(stream) for stream in streams))
    return len(latencies), latencies


async def run_concurrent(
    writers: int, seconds: float, rounds: int, payload_size: int, before: Path | None, work: Path
) -> None:
    payload = os.urandom(payload_size // 2).hex().encode()[:payload_size]
    builds = {"after": lambda: cluster_up(1, work / "after", timeout=60)[0]}
    if before is not None:
        builds["before"] = lambda: _node_from(before, work / "before")
    nodes: dict[str, Any] = {}
    load_before = os.getloadavg()
    results: dict[tuple[str, int], list[tuple[int, list[float]]]] = {}
    try:
        for name, build in builds.items():
            nodes[name] = build()
        clients = {name: Client(node.api_url) for name, node in nodes.items()}
        try:
            streams = {
                name: [client.stream(f"flood-{i}", nacl.signing.SigningKey(os.urandom(32))) for i in range(writers)]
                for name, client in clients.items()
            }
            for name in clients:  # each stream exists before the clock starts
                await asyncio.gather(*(stream.append(payload) for stream in streams[name]))
            for round_ in range(rounds):
                order = list(clients) if round_ % 2 == 0 else list(reversed(clients))
                for count in (writers, 1):
                    for name in order:
                        done = await _flood(clients[name], streams[name][:count], seconds, payload)
                        results.setdefault((name, count), []).append(done)
        finally:
            for client in clients.values():
                await client.close()
    finally:
        for name in nodes:
            cluster_down(work / name)
    load_after = os.getloadavg()
    print(f"concurrent single appends, {payload_size}-byte payloads, one node, {rounds} rounds of {seconds:.0f} s,"
          f" alternating; load {load_before[0]:.2f} -> {load_after[0]:.2f}")  # fmt: skip
    for (name, count), runs in sorted(results.items(), key=lambda item: (-item[0][1], item[0][0])):
        rates = [entries / seconds for entries, _ in runs]
        latencies = [value for _, values in runs for value in values]
        spread = f"{min(rates):.0f}-{max(rates):.0f}"
        print(f"{name:<7} {count:>3} writer(s): {statistics.median(rates):7.0f} appends/s ({spread})   "
              + _summary("latency", latencies).split(maxsplit=2)[2])  # fmt: skip
    if before is not None:
        for count in (writers, 1):
            ratios = [
                (a[0] / b[0]) if b[0] else float("nan")
                for a, b in zip(results[("after", count)], results[("before", count)], strict=True)
            ]
            print(
                f"after / before, {count} writer(s): appends/s ratio per round {', '.join(f'{r:.2f}' for r in ratios)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="default 200 (--concurrent: 3)")
    parser.add_argument("--payload", type=int, default=256)
    parser.add_argument("--triggers", action="store_true", help="trigger append-to-output latency instead")
    parser.add_argument("--sustained", action="store_true", help="sustained trigger throughput and RSS instead")
    parser.add_argument("--cross", action="store_true", help="append-to-output latency across two nodes instead")
    parser.add_argument("--concurrent", action="store_true", help="throughput of concurrent single appends instead")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--before", type=Path, default=None, help="with --concurrent: a tree to A/B against")
    parser.add_argument("--seconds", type=float, default=None, help="default 60 (--concurrent: 5 a round)")
    parser.add_argument("--rate", type=float, default=1200.0)
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 3 if args.concurrent else 200
    if args.seconds is None:
        args.seconds = 5.0 if args.concurrent else 20.0 if args.cross else 60.0
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as work:
        if args.concurrent:
            before = args.before.resolve() if args.before else None
            asyncio.run(run_concurrent(args.writers, args.seconds, args.rounds, args.payload, before, Path(work)))
        elif args.cross:
            asyncio.run(run_cross(args.rounds, args.payload, args.seconds, args.rate, Path(work)))
        elif args.sustained:
            asyncio.run(run_sustained(args.seconds, args.rate, args.payload, Path(work)))
        elif args.triggers:
            asyncio.run(run_triggers(args.rounds, args.payload, Path(work)))
        else:
            asyncio.run(run(args.rounds, args.payload, Path(work)))


if __name__ == "__main__":
    main()
