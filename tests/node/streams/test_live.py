"""Live replication in process: a holder notices the replicas that watch a stream, within bounds,
and a notice is only a hint (node.streams.live). Several stream services talk through a mesh that
hands each request to the addressed service's ``serve``, as libp2p would, naming the caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from node.errors import NetworkError
from node.metrics import Metrics
from node.streams import live
from node.streams import service as service_module
from node.streams.live import MAX_WATCHERS, MAX_WATCHES_PER_PEER, Watchers
from node.streams.protocol import (
    MAX_NOTICE_HEADS,
    Heads,
    StreamProtocolError,
    Watch,
    parse_request,
    parse_since,
    parse_watching,
)
from node.streams.service import StreamService
from node.streams.store import StreamStore
from storage import dagcbor
from tests.node.streams.helpers import Writer


class Mesh:
    def __init__(self) -> None:
        self.nodes: dict[str, StreamService] = {}
        self.sent: list[tuple[str, str, dict[str, Any]]] = []  # (from, to, request)
        self.old: set[str] = set()  # peers that answer as a node from before watches (parse_since only)

    def link(self, me: str) -> Any:
        mesh = self

        class Link:
            async def request(self, peer: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]:
                mesh.sent.append((me, peer, dagcbor.decode(payload)))
                if peer not in mesh.nodes:
                    raise NetworkError(f"no route to {peer}")
                if peer in mesh.old:
                    try:
                        parse_since(payload)
                    except StreamProtocolError:
                        return []
                return await mesh.nodes[peer].serve(me, payload)

        return Link()

    def requests(self, op: str, sender: str) -> list[dict[str, Any]]:
        return [request for who, _, request in self.sent if who == sender and request["op"] == op]


@pytest.fixture
async def mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[[str], Any]]:
    """``await start(name)``: a started stream service called ``name`` on the mesh. The fallback poll
    is an hour: whatever reaches a replica sooner came by live replication."""
    monkeypatch.setattr(service_module, "POLL_SECONDS", 3600.0)
    the_mesh = Mesh()
    started: list[StreamService] = []

    async def start(name: str, poll_seconds: float | None = None) -> StreamService:
        node = StreamService(StreamStore(tmp_path / name), the_mesh.link(name), Metrics(), poll_seconds=poll_seconds)
        the_mesh.nodes[name] = node
        await node.start()
        started.append(node)
        return node

    start.mesh = the_mesh  # type: ignore[attr-defined]
    yield start
    for node in started:
        await node.stop()
        node.store.close()


async def _head(node: StreamService, stream: str, seq: int, timeout: float = 1.0) -> None:
    """Wait (on the stream's change event) until ``node`` holds ``stream`` up to ``seq``."""
    async with asyncio.timeout(timeout):
        while True:
            changed = node.changed(stream)
            info = await asyncio.to_thread(node.store.info, stream)
            if info is not None and info.head_seq >= seq:
                return
            await changed.wait()


async def _settled(*nodes: StreamService) -> None:
    """Let every head notice and every notice-made pull started so far on ``nodes`` run to its end
    (what a test asserting that nothing more happened must wait for)."""
    pending = [task for node in nodes for task in (*node.watchers._senders.values(), *node.live._pulling.values())]
    await asyncio.gather(*pending, return_exceptions=True)


def _count(node: StreamService, name: str, **labels: str) -> float:
    value = node.metrics.registry.get_sample_value(f"mycel_{name}", labels)
    return value or 0.0


async def test_a_replica_gets_each_entry_within_a_second_without_a_poll(mesh: Any) -> None:
    a, b, c = await mesh("a"), await mesh("b"), await mesh("c")
    writer = Writer()
    await a.append(writer.stream, [writer.next(b"1")])
    await b.subscribe(writer.stream, "a")
    await c.subscribe(writer.stream, "b")  # a replica of a replica: b is its holder
    assert b.watchers.watching(writer.stream) == ["c"] and a.watchers.watching(writer.stream) == ["b"]
    for seq in range(2, 12):
        await a.append(writer.stream, [writer.next(str(seq).encode())])
        await _head(c, writer.stream, seq)  # through b, each hop verified
    assert [e.payload for e in await c.since(writer.stream, 0, 20)] == [str(i).encode() for i in range(1, 12)]
    assert _count(b, "stream_notices_taken_total") >= 10 and _count(a, "stream_notices_sent_total") >= 10


async def test_a_peer_gets_at_most_one_notice_per_pull(mesh: Any) -> None:
    a = await mesh("a")
    writer = Writer()
    await a.append(writer.stream, [writer.next()])
    watchers: Watchers = a.watchers
    assert watchers.watch("z", writer.stream).ttl > 0  # z is not on the mesh: each notice to it fails
    for _ in range(5):
        await a.append(writer.stream, [writer.next()])
    await _settled(a)
    notices = mesh.mesh.requests("heads", "a")
    assert notices == [{"op": "heads", "heads": {writer.stream: 2}}]  # the first move; the rest wait for a pull
    await a.serve("z", dagcbor.encode({"op": "since", "stream": writer.stream, "after": 6, "limit": 1}))
    await a.append(writer.stream, [writer.next()])
    await _settled(*mesh.mesh.nodes.values())
    assert mesh.mesh.requests("heads", "a")[1:] == [{"op": "heads", "heads": {writer.stream: 7}}]


async def test_watches_are_bounded_per_peer_and_in_all_and_only_for_held_streams(mesh: Any) -> None:
    a = await mesh("a")
    writers = [Writer(f"s{i}") for i in range(MAX_WATCHES_PER_PEER + 1)]
    for writer in writers:
        await a.append(writer.stream, [writer.next()])

    async def watch(peer: str, stream: str) -> int:
        answer = parse_watching(await a.serve(peer, Watch(stream).encode()))
        assert answer is not None
        return answer.ttl

    assert await watch("stranger", Writer("not-here").stream) == 0  # not held here: nothing to watch
    for writer in writers[:-1]:
        assert await watch("stranger", writer.stream) == int(live.WATCH_TTL)
    assert await watch("stranger", writers[-1].stream) == 0  # past the per-peer bound
    assert await watch("stranger", writers[0].stream) > 0  # a renewal is not a new watch
    assert _count(a, "stream_watches_refused_total", reason="full") == 1
    assert _count(a, "stream_watches_refused_total", reason="not_held") == 1
    peers = MAX_WATCHERS // MAX_WATCHES_PER_PEER  # the stranger's watches count in all
    for index in range(1, peers):
        for writer in writers[:-1]:
            assert await watch(f"peer{index}", writer.stream) > 0
    assert await watch("late", writers[0].stream) == 0  # past the bound in all
    assert sum(len(a.watchers.watching(w.stream)) for w in writers) == MAX_WATCHERS


async def test_a_notice_is_only_a_hint(mesh: Any) -> None:
    a, b = await mesh("a"), await mesh("b")
    writer, other = Writer(), Writer("other")
    await a.append(writer.stream, [writer.next(b"1")])
    await a.append(other.stream, [other.next(b"1")])
    await b.subscribe(writer.stream, "a")
    pulls = len(mesh.mesh.requests("since", "b"))

    for peer, heads in (
        ("stranger", {writer.stream: 99}),  # not the peer b replicates it from
        ("a", {writer.stream: 1}),  # the source, but nothing past the head b holds
        ("a", {other.stream: 5}),  # a stream b does not replicate
    ):
        assert await b.serve(peer, Heads(heads).encode()) == []
    await _settled(*mesh.mesh.nodes.values())
    assert len(mesh.mesh.requests("since", "b")) == pulls  # none of them made b pull
    assert _count(b, "stream_notices_ignored_total") == 3
    assert (await asyncio.to_thread(b.store.info, writer.stream)).head_seq == 1  # type: ignore[union-attr]
    assert await asyncio.to_thread(b.store.info, other.stream) is None

    # the source may overstate its head: b pulls, verifies, and keeps only what a really holds
    assert await b.serve("a", Heads({writer.stream: 99}).encode()) == []
    await _head(b, writer.stream, 1)
    async with asyncio.timeout(5):
        while len(mesh.mesh.requests("since", "b")) == pulls:
            await asyncio.sleep(0.01)
    assert (await asyncio.to_thread(b.store.info, writer.stream)).head_seq == 1  # type: ignore[union-attr]


async def test_with_a_holder_from_before_watches_the_poll_goes_on(mesh: Any) -> None:
    old, b = await mesh("old"), await mesh("b")
    mesh.mesh.old.add("old")
    writer = Writer()
    await old.append(writer.stream, [writer.next(b"1")])
    info = await b.subscribe(writer.stream, "old")  # its watch is answered with nothing: no error
    assert info is not None and info.head_seq == 1
    assert not await b.live.watch(writer.stream, "old")  # remembered: not asked again at once
    assert len(mesh.mesh.requests("watch", "b")) == 1
    # and what an old node does with the new requests: its parser refuses them, it answers nothing
    for message in (Watch(writer.stream).encode(), Heads({writer.stream: 2}).encode()):
        with pytest.raises(StreamProtocolError):
            parse_since(message)


def test_the_new_messages_are_checked() -> None:
    stream = Writer().stream
    assert parse_request(Watch(stream).encode()) == Watch(stream)
    assert parse_request(Heads({stream: 3}).encode()) == Heads({stream: 3})
    many = {Writer(f"s{i}").stream: 1 for i in range(MAX_NOTICE_HEADS + 1)}
    for bad in (
        dagcbor.encode({"op": "watch", "stream": "x"}),
        dagcbor.encode({"op": "watch", "stream": stream, "more": 1}),
        dagcbor.encode({"op": "heads", "heads": {}}),
        dagcbor.encode({"op": "heads", "heads": {stream: 0}}),
        dagcbor.encode({"op": "heads", "heads": {stream: True}}),
        dagcbor.encode({"op": "heads", "heads": {"x": 1}}),
        dagcbor.encode({"op": "heads", "heads": [stream]}),
        dagcbor.encode({"op": "heads", "heads": many}),
        dagcbor.encode({"op": "heads", "heads": {stream: 1}, "more": 1}),
        dagcbor.encode({"op": "nothing"}),
        b"\x00" * 9000,
    ):
        with pytest.raises(StreamProtocolError):
            parse_request(bad)
    assert parse_watching([]) is None  # a holder from before watches
    assert parse_watching([dagcbor.encode({"op": "watching", "ttl": 30})]) == live.Watching(30)
    for frames in (
        [dagcbor.encode({"op": "watching", "ttl": -1})],
        [dagcbor.encode({"op": "watching", "ttl": 30, "x": 1})],
        [dagcbor.encode({"op": "watching", "ttl": 30})] * 2,
    ):
        with pytest.raises(StreamProtocolError):
            parse_watching(frames)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_a_lapsed_watch_gets_no_notice_and_frees_its_room(mesh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a = await mesh("a")
    clock = _Clock()
    monkeypatch.setattr(live, "time", clock)
    writers = [Writer(f"s{i}") for i in range(MAX_WATCHES_PER_PEER + 1)]
    for writer in writers:
        await a.append(writer.stream, [writer.next()])
    for writer in writers[:-1]:
        assert a.watchers.watch("p", writer.stream).ttl > 0
    assert a.watchers.watch("p", writers[-1].stream).ttl == 0
    clock.now += live.WATCH_TTL / 2
    await a.serve("p", dagcbor.encode({"op": "since", "stream": writers[0].stream, "after": 1, "limit": 1}))
    clock.now += live.WATCH_TTL / 2 + 1  # all lapsed but the one p pulled since
    assert a.watchers.watching(writers[0].stream) == ["p"] and a.watchers.watching(writers[1].stream) == []
    await a.append(writers[1].stream, [writers[1].next()])
    await _settled(*mesh.mesh.nodes.values())
    assert mesh.mesh.requests("heads", "a") == []  # p's watch of it lapsed: nothing sent
    assert a.watchers.watch("p", writers[-1].stream).ttl > 0  # the lapsed ones made room


async def test_a_store_error_on_one_stream_does_not_stop_the_poll_for_the_others(
    mesh: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await mesh("a"), await mesh("b", poll_seconds=0.05)
    mesh.mesh.old.add("a")  # a holder from before watches: b's replicas move by the poll alone
    broken, fine = Writer("broken"), Writer("fine")
    for writer in (broken, fine):
        await a.append(writer.stream, [writer.next()])
        await b.subscribe(writer.stream, "a")
    real_sync = b.sync

    async def sync(stream: str, source: str) -> int:
        if stream == broken.stream:
            raise OSError("disk full")  # not a network or protocol refusal: a local fault
        return await real_sync(stream, source)

    monkeypatch.setattr(b, "sync", sync)
    for _ in range(3):  # several polls, each meeting the broken stream first or second
        await a.append(broken.stream, [broken.next()])
        await a.append(fine.stream, [fine.next()])
        await _head(b, fine.stream, fine.seq, timeout=5.0)
    assert not b._task.done()
    assert _count(b, "stream_replication_errors_total") >= 1  # counted and logged, not silent
