"""The frame reader the exchange reads replies with: frames inside one read, across many, and bad ones."""

from __future__ import annotations

import random
from pathlib import Path
from typing import cast

import pytest

from node.errors import NetworkError
from node.exchange import BlockExchange
from node.metrics import Metrics
from node.p2p.framing import MAX_FRAME, Frame, FrameReader, coalesced, frame, frame_size
from node.p2p.network import P2PNetwork
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.varint import encode_uvarint
from tests.support import seeded_bytes


class ChoppedStream:
    """Hands out ``data`` in reads of random sizes (never more than asked)."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data = data
        self._pos = 0
        self._random = random.Random(seed)

    async def read(self, n: int | None = None) -> bytes:
        size = self._random.choice([1, 2, 7, 1000, 65519, 1 << 20])
        size = min(size, n if n is not None else size)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    async def write(self, data: bytes) -> None:
        raise AssertionError("read only")


async def read_all(reader: FrameReader) -> list[bytes]:
    frames = []
    while (item := await reader.read_frame()) is not None:
        frames.append(item)
    return frames


@pytest.mark.parametrize("seed", range(6))
async def test_frames_come_back_whole_however_the_stream_is_cut(seed: int) -> None:
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.choice([0, 1, 127, 128, 5000, 262_144 + 40])) for _ in range(40)]
    wire = b"".join(coalesced(payloads, 1 << 20))
    assert wire == b"".join(frame(p) for p in payloads)
    assert await read_all(FrameReader(ChoppedStream(wire, seed))) == payloads


async def test_a_cut_off_frame_and_an_oversized_one_are_refused() -> None:
    with pytest.raises(NetworkError, match="inside a frame"):
        await read_all(FrameReader(ChoppedStream(frame(b"x" * 5000)[:-1], 1)))
    with pytest.raises(NetworkError, match="inside a frame header"):
        await read_all(FrameReader(ChoppedStream(b"\x80", 1)))
    with pytest.raises(NetworkError, match="over the"):
        await read_all(FrameReader(ChoppedStream(encode_uvarint(MAX_FRAME + 1), 1)))
    with pytest.raises(NetworkError, match="varint too long"):
        await read_all(FrameReader(ChoppedStream(b"\xff" * 6, 1)))


@pytest.mark.parametrize("seed", range(3))
async def test_a_frame_in_parts_goes_out_as_its_concatenation(seed: int) -> None:
    rng = random.Random(seed)
    payloads = [(rng.randbytes(rng.choice([1, 40])), rng.randbytes(rng.choice([0, 5000, 262_144]))) for _ in range(20)]
    joined = [b"".join(parts) for parts in payloads]
    mixed: list[Frame] = [parts if index % 2 else joined[index] for index, parts in enumerate(payloads)]
    wire = b"".join(coalesced(mixed, 1 << 20))
    assert wire == b"".join(frame(p) for p in joined)
    assert [frame_size(p) for p in mixed] == [len(p) for p in joined]
    assert await read_all(FrameReader(ChoppedStream(wire, seed))) == joined


def test_a_served_block_is_not_copied_behind_its_header(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks", map_size=8 << 20)
    exchange = BlockExchange(store, cast(P2PNetwork, _NoNetwork()), Metrics())
    try:
        data = seeded_bytes("served", 256 << 10)
        cid = CID.for_block(data)
        store.put(cid, data)
        [(header, body)] = exchange._frames_for("peer", [cid])
        assert header == b"\x01" + encode_uvarint(len(bytes(cid))) + bytes(cid)
        assert body == data and isinstance(body, bytes)  # the block as read, joined only into the write
    finally:
        exchange.close()
        store.close()


class _NoNetwork:
    def handle(self, protocol: str, handler: object) -> None:
        pass
