"""Entries verify offline; the store refuses what breaks the chain and keeps fork evidence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.streams.model import Refusal, Retention, StreamRefused
from node.streams.service import verify_batch
from node.streams.store import StreamStore
from storage import dagcbor
from storage.cid import CID
from storage.streamentry import MAX_INLINE, EntryError, sign_entry, verify_entry
from tests.node.streams.helpers import Writer


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StreamStore]:
    store = StreamStore(tmp_path / "streams")
    yield store
    store.close()


def test_an_entry_verifies_offline_and_names_its_chain() -> None:
    writer = Writer()
    first = verify_entry(writer.next(b"hello"))
    second = verify_entry(writer.next(b"world"))
    assert (first.stream, first.writer, first.seq, first.prev, first.payload) == (
        writer.stream, writer.peer, 1, None, b"hello"
    )  # fmt: skip
    assert second.prev == first.cid and second.seq == 2
    assert Writer(seed=b"v" * 32).stream != writer.stream != Writer("other").stream  # key and name both count


def test_a_forged_or_altered_entry_is_refused() -> None:
    writer = Writer()
    raw = writer.next(b"pay 1")
    envelope = dagcbor.decode(raw)
    envelope["entry"]["payload"] = b"pay 9"
    with pytest.raises(EntryError) as altered:
        verify_entry(dagcbor.encode(envelope))
    assert altered.value.reason == "bad_signature"
    # another key signing the writer's stream: the stream id is re-derived from the key that signed
    mallory = Writer(seed=b"m" * 32)
    envelope = dagcbor.decode(mallory.at(1, None))
    envelope["entry"]["writer"] = writer.peer
    with pytest.raises(EntryError) as forged:
        verify_entry(dagcbor.encode(envelope))
    assert forged.value.reason in ("wrong_stream", "bad_signature")
    envelope["entry"]["stream"] = writer.stream
    with pytest.raises(EntryError) as forged:
        verify_entry(dagcbor.encode(envelope))
    assert forged.value.reason == "bad_signature"


def test_oversize_and_malformed_entries_are_refused() -> None:
    writer = Writer()
    with pytest.raises(EntryError, match="at most"):
        writer.next(b"x" * (MAX_INLINE + 1))
    big = verify_entry(writer.next(CID.for_block(b"x" * (MAX_INLINE + 1))))  # large payloads go by CID
    assert big.payload is None and big.payload_cid is not None
    for bad in (b"\xff", dagcbor.encode({"entry": {}, "sig": b""}), dagcbor.encode([1]), b"x" * 20_000):
        with pytest.raises(EntryError) as refused:
            verify_entry(bad)
        assert refused.value.reason in ("malformed", "oversize")
    with pytest.raises(EntryError, match="prev"):  # seq 1 has no predecessor, any other has one
        verify_entry(sign_entry(writer.key, writer.name, 2, None, b"x", 0))


def test_appends_chain_and_gaps_replays_and_wrong_streams_are_refused(store: StreamStore) -> None:
    writer = Writer()
    one, two, three = writer.next(), writer.next(), writer.next()
    store.append(verify_batch(writer.stream, [one]), origin=True)
    for raws, refusal in (
        ([three], Refusal.GAP),
        ([one], Refusal.REPLAY),
        ([two, three, three], Refusal.REPLAY),  # a batch with a bad entry lands not at all
    ):
        with pytest.raises(StreamRefused) as refused:
            store.append(verify_batch(writer.stream, raws), origin=True)
        assert refused.value.refusal is refusal
        info = store.info(writer.stream)
        assert info is not None and info.head_seq == 1 and not info.forked
    with pytest.raises(StreamRefused) as wrong:
        verify_batch(Writer("other").stream, [two])
    assert wrong.value.refusal is Refusal.WRONG_STREAM
    info = store.append(verify_batch(writer.stream, [two, three]), origin=True)
    assert (info.head_seq, info.head_cid) == (3, writer.head)
    assert [verify_entry(raw).seq for raw in store.since(writer.stream, 1, 10)] == [2, 3]


def test_a_second_entry_at_a_seq_is_a_fork_kept_as_evidence(store: StreamStore) -> None:
    writer = Writer()
    one, two = writer.next(), writer.next()
    store.append(verify_batch(writer.stream, [one, two]), origin=True)
    rival = writer.at(2, verify_entry(one).cid, b"the other history")
    with pytest.raises(StreamRefused) as fork:
        store.append(verify_batch(writer.stream, [rival]), origin=True)
    assert fork.value.refusal is Refusal.FORK
    info = store.info(writer.stream)
    assert info is not None and info.forked and info.head_seq == 2
    [evidence] = store.forks(writer.stream)
    assert {evidence["entry"], evidence["held"]} == {rival, two}  # both signed entries, verifiable by anyone
    assert verify_entry(evidence["entry"]).seq == verify_entry(evidence["held"]).seq == 2
    with pytest.raises(StreamRefused) as refused:  # nothing more is built on a forked stream
        store.append(verify_batch(writer.stream, [writer.next()]), origin=True)
    assert refused.value.refusal is Refusal.FORKED


def test_an_entry_linking_elsewhere_is_a_fork(store: StreamStore) -> None:
    writer = Writer()
    store.append(verify_batch(writer.stream, [writer.next()]), origin=True)
    elsewhere = writer.at(2, CID.for_block(b"not the head", 0x71))
    with pytest.raises(StreamRefused) as fork:
        store.append(verify_batch(writer.stream, [elsewhere]), origin=True)
    assert fork.value.refusal is Refusal.FORK
    assert store.forks(writer.stream)[0]["entry"] == elsewhere


def test_retention_keeps_the_last_entries_and_the_young_ones(store: StreamStore) -> None:
    writer = Writer()
    raws = [writer.next(time_ms=0) for _ in range(10)]
    info = store.append(verify_batch(writer.stream, raws[:6]), origin=True, retention=Retention(entries=4))
    assert info.first_seq == 3 and [verify_entry(r).seq for r in store.since(writer.stream, 0, 100)] == [3, 4, 5, 6]
    info = store.append(verify_batch(writer.stream, raws[6:]), origin=True)  # the stream keeps its retention
    assert info.first_seq == 7 and info.head_seq == 10
    info = store.set_retention(writer.stream, Retention(seconds=60))  # entries stamped 1970: only the head stays
    assert info.first_seq == 10 and len(store.since(writer.stream, 0, 100)) == 1
    with pytest.raises(StreamRefused) as replay:  # a dropped seq is still not appended again
        store.append(verify_batch(writer.stream, [raws[2]]), origin=True)
    assert replay.value.refusal is Refusal.REPLAY


def test_a_new_replica_starts_at_the_oldest_entry_its_holder_kept(store: StreamStore) -> None:
    writer = Writer()
    raws = [writer.next() for _ in range(5)]
    info = store.append(verify_batch(writer.stream, raws[3:]), origin=False, source="holder")
    assert (info.first_seq, info.head_seq, info.head_cid, info.origin) == (4, 5, writer.head, False)
    with pytest.raises(StreamRefused) as gap:  # from then on the chain rule holds as everywhere
        store.append(verify_batch(writer.stream, [writer.at(7, writer.head)]), origin=False, source="holder")
    assert gap.value.refusal is Refusal.GAP
    with pytest.raises(StreamRefused) as wrong:  # and nobody appends to a replica as if it were the origin
        store.append(verify_batch(writer.stream, [writer.next()]), origin=True)
    assert wrong.value.refusal is Refusal.WRONG_STREAM
