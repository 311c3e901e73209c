"""Verifying a batch decodes its writer's peer ID once, not twice per entry: that base58 decode
(pure Python) was ~2/3 of the cost of verifying an entry and capped a node at ~300 appended
entries/s. A bad writer ID is still refused on every entry that carries it. And the node's
own trigger loop reads stored entries (verified when stored) without checking each signature again."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from multiformats import multibase

from node.metrics import Metrics
from node.streams.model import Refusal, StreamRefused
from node.streams.service import StreamService, verify_batch
from node.streams.store import StreamStore
from storage import peerid, streamentry
from storage.cid import CID
from tests.node.streams.helpers import Writer


def test_a_batch_decodes_its_writer_id_once(monkeypatch: pytest.MonkeyPatch) -> None:
    writer = Writer("cost", seed=b"c" * 32)
    raws = [writer.next(f"e{n}".encode()) for n in range(128)]
    peerid.public_key_from_peer_id.cache_clear()
    calls: list[str] = []
    decode = multibase.decode

    def counting(text: str) -> bytes:
        calls.append(text)
        return decode(text)

    monkeypatch.setattr(peerid.multibase, "decode", counting)
    entries = verify_batch(writer.stream, raws)
    assert [e.seq for e in entries] == list(range(1, 129))
    assert len(calls) == 1


def test_a_bad_writer_id_is_refused_each_time() -> None:
    for _ in range(2):  # a failed decode is not remembered as a key
        with pytest.raises(peerid.InvalidPeerIDError):
            peerid.public_key_from_peer_id("12D3KooWnotapeerid")
    writer = Writer("cost2", seed=b"d" * 32)
    good = writer.next(b"ok")
    with pytest.raises(StreamRefused) as refused:
        verify_batch(writer.stream, [good, good[:-3] + b"xyz"])
    assert refused.value.index == 1 and refused.value.refusal in (Refusal.MALFORMED, Refusal.BAD_SIGNATURE)


def test_signing_a_batch_encodes_the_writer_id_once(monkeypatch: pytest.MonkeyPatch) -> None:
    peerid.peer_id_for.cache_clear()
    calls: list[bytes] = []
    encode = multibase.encode

    def counting(data: bytes, base: str) -> str:
        calls.append(data)
        return encode(data, base)

    monkeypatch.setattr(peerid.multibase, "encode", counting)
    writer = Writer("cost3", seed=b"e" * 32)
    raws = [writer.next(f"e{n}".encode()) for n in range(64)]
    assert len(raws) == 64 and len(calls) == 1


async def test_the_trigger_read_path_decodes_stored_entries_without_a_second_signature_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = StreamService(StreamStore(tmp_path / "s"), cast(Any, None), Metrics())
    writer = Writer("stored", seed=b"f" * 32)
    await streams.append(
        writer.stream, [writer.next(f"e{n}".encode()) for n in range(20)] + [writer.next(CID.for_block(b"big", 0x55))]
    )
    checked = await streams.since(writer.stream, 0, 50)
    calls: list[str] = []
    monkeypatch.setattr(streamentry, "verify_signature", lambda *args: calls.append("sig") or True)
    assert await streams.stored(writer.stream, 0, 50) == checked  # field for field, CID for CID
    assert await streams.stored(writer.stream, 18, 2) == checked[18:20]
    assert calls == []
    streams.store.close()
