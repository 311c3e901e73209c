"""Announced heads are schema-checked and bounded; the stream protocol's messages are typed and bounded,
and a holder cannot make a replica store anything the writer did not sign."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from node import announce
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.streams.model import Refusal, StreamRefused
from node.streams.protocol import MAX_BATCH, Since, StreamProtocolError, parse_entries, parse_since
from node.streams.service import MAX_HEADS, MAX_QUEUED_PER_PEER, MAX_SERVING_PER_PEER, StreamService, verify_batch
from node.streams.store import StreamStore
from storage import dagcbor
from storage.cid import CID
from tests.node.streams.helpers import Writer
from tests.support import announcement_payload

IDENTITY = NodeIdentity.from_seed(b"n" * 32)


def test_an_announcement_carries_heads_and_refuses_bad_ones() -> None:
    writer = Writer()
    head = CID.for_block(writer.next(), 0x71)
    good = announcement_payload(IDENTITY.peer_id, streams={writer.stream: {"seq": 1, "cid": head}})
    assert announce.verify(announce.sign(IDENTITY, good))["streams"][writer.stream]["cid"] == head
    bad: Any
    too_many = {Writer(f"s{i}").stream: {"seq": 1, "cid": head} for i in range(MAX_HEADS + 1)}
    for bad in (
        {"not-a-stream-id": {"seq": 1, "cid": head}},
        {writer.stream: {"seq": 0, "cid": head}},
        {writer.stream: {"seq": 1, "cid": "bafy"}},
        {writer.stream: {"seq": 1, "cid": head, "extra": 1}},
        too_many,
        [],
    ):
        with pytest.raises(announce.AnnouncementError) as refused:
            announce.verify(announce.sign(IDENTITY, announcement_payload(IDENTITY.peer_id, streams=bad)))
        assert str(refused.value) == "invalid"
    assert (
        len(
            announce.sign(
                IDENTITY, announcement_payload(IDENTITY.peer_id, streams=dict(list(too_many.items())[:MAX_HEADS]))
            )
        )
        < announce.MAX_SIZE
    )


def test_protocol_messages_are_checked() -> None:
    stream = Writer().stream
    asked = parse_since(Since(stream, 3, 10).encode())
    assert (asked.stream, asked.after, asked.limit) == (stream, 3, 10)
    for bad in (
        b"\xff",
        dagcbor.encode({"op": "since", "stream": stream, "after": -1, "limit": 1}),
        dagcbor.encode({"op": "since", "stream": stream, "after": 0, "limit": MAX_BATCH + 1}),
        dagcbor.encode({"op": "since", "stream": "x", "after": 0, "limit": 1}),
        dagcbor.encode({"op": "since", "stream": stream, "after": 0, "limit": 1, "more": 1}),
        b"\x00" * 600,
    ):
        with pytest.raises(StreamProtocolError):
            parse_since(bad)
    header = dagcbor.encode({"op": "entries", "head": 5, "forked": False})
    with pytest.raises(StreamProtocolError, match="asked for"):
        parse_entries([header, b"a", b"b"], Since(stream, 0, 1))
    with pytest.raises(StreamProtocolError, match="at most"):
        parse_entries([header, b"x" * 20_000], Since(stream, 0, 1))
    with pytest.raises(StreamProtocolError):
        parse_entries([], Since(stream, 0, 1))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[StreamService]:
    service = StreamService(StreamStore(tmp_path / "s"), cast(Any, None), Metrics())
    yield service
    service.store.close()


async def test_the_holder_serves_entries_after_a_seq(service: StreamService) -> None:
    writer = Writer()
    raws = [writer.next(str(i).encode()) for i in range(5)]
    await service.append(writer.stream, raws)
    frames = await service.serve("peer", Since(writer.stream, 2, 2).encode())
    answer = parse_entries(frames, Since(writer.stream, 2, 2))
    assert answer.head == 5 and answer.entries == raws[2:4]
    assert await service.serve("peer", b"junk") == []
    unknown = parse_entries(await service.serve("peer", Since(Writer("x").stream, 0, 5).encode()), Since("", 0, 5))
    assert unknown.head == 0 and unknown.entries == []
    assert service.heads() == {writer.stream: {"seq": 5, "cid": writer.head}}


def test_a_replica_refuses_what_the_writer_did_not_sign() -> None:
    writer = Writer()
    envelope = dagcbor.decode(writer.next(b"real"))
    envelope["entry"]["payload"] = b"injected by the holder"
    with pytest.raises(StreamRefused) as refused:
        verify_batch(writer.stream, [dagcbor.encode(envelope)])
    assert refused.value.refusal is Refusal.BAD_SIGNATURE


async def test_one_peer_cannot_take_every_serving_slot(service: StreamService) -> None:
    writer = Writer()
    await service.append(writer.stream, [writer.next()])
    gate = threading.Event()
    real_info = service.store.info

    def slow_info(stream: str) -> Any:
        gate.wait(10)
        return real_info(stream)

    service.store.info = slow_info  # type: ignore[method-assign]
    request = Since(writer.stream, 0, 1).encode()
    budget = MAX_SERVING_PER_PEER + MAX_QUEUED_PER_PEER
    flood = [asyncio.create_task(service.serve("greedy", request)) for _ in range(budget + 3)]
    other = asyncio.create_task(service.serve("polite", request))
    refused = await asyncio.gather(*flood[-3:])
    assert refused == [[], [], []]  # past the budget: an empty reply at once, nothing read
    gate.set()
    answers = await asyncio.gather(*flood[:-3], other)
    assert all(len(frames) == 2 for frames in answers)  # header and the entry, for each admitted one


class _Served:
    """A network whose one peer is another stream service (its serve answers every request)."""

    def __init__(self, holder: StreamService) -> None:
        self.holder = holder

    async def request(self, peer: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]:
        return await self.holder.serve(peer, payload)


async def test_a_replica_announces_its_head_after_the_origins_within_the_bound(
    service: StreamService, tmp_path: Path
) -> None:
    writer = Writer("replicated")
    await service.append(writer.stream, [writer.next(str(i).encode()) for i in range(3)])
    replica = StreamService(StreamStore(tmp_path / "r"), cast(Any, _Served(service)), Metrics())
    try:
        await replica.subscribe(writer.stream, "origin")
        assert replica.heads() == {writer.stream: {"seq": 3, "cid": writer.head}}  # the same shape as an origin's
        payload = announcement_payload(IDENTITY.peer_id, streams=replica.heads())
        assert announce.verify(announce.sign(IDENTITY, payload))["streams"][writer.stream]["seq"] == 3
        await service.append(writer.stream, [writer.next(b"more")])
        await replica.sync(writer.stream, "origin")
        assert replica.heads()[writer.stream]["seq"] == 4  # a pull moves the announced head
        own = [Writer(f"own{i}") for i in range(MAX_HEADS)]
        for other in own[:-1]:
            await replica.append(other.stream, [other.next()])
        assert len(replica.heads()) == MAX_HEADS and writer.stream in replica.heads()
        await replica.append(own[-1].stream, [own[-1].next()])
        heads = replica.heads()
        assert len(heads) == MAX_HEADS and writer.stream not in heads  # the origins come first
    finally:
        replica.store.close()
    restarted = StreamService(StreamStore(tmp_path / "r2"), cast(Any, _Served(service)), Metrics())
    try:
        await restarted.subscribe(writer.stream, "origin")
    finally:
        restarted.store.close()
    again = StreamService(StreamStore(tmp_path / "r2"), cast(Any, _Served(service)), Metrics())
    await again.start()
    try:
        assert again.heads() == {writer.stream: {"seq": 4, "cid": writer.head}}  # known again after a restart
    finally:
        await again.stop()
        again.store.close()
