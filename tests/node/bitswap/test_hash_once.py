"""Blocks received over Bitswap are hashed once: the hash that finds their CID is the proof stored."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from node.ipfs import bitswap, bitswap_pb
from node.ipfs.bitswap_pb import Message, Payload, encode, prefix_of
from storage import blockstore, cid
from storage.cid import CID, DAG_PB, RAW, SHA2_256

WANTED = [CID.for_block(f"wanted {i}".encode() * 1000, RAW) for i in range(3)]
V0 = CID(b"\x12\x20" + hashlib.sha256(b"old node").digest())


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every sha256 over data, wherever the Bitswap receive path may take it from."""
    calls = [0]
    real = hashlib.sha256

    def sha256(*data: Any) -> Any:
        if data:
            calls[0] += 1
        return real(*data)

    for table in (blockstore._IDENTIFY_HASHERS, cid._HASHERS, bitswap_pb._HASHERS):
        monkeypatch.setitem(table, SHA2_256, sha256)  # type: ignore[index]
    monkeypatch.setattr(bitswap_pb.hashlib, "sha256", sha256)
    return calls


def test_each_received_block_is_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [f"wanted {i}".encode() * 1000 for i in range(3)]
    payload = [Payload(prefix_of(c), data) for c, data in zip(WANTED, blocks, strict=True)]
    payload.append(Payload(prefix_of(WANTED[0]), b"spoiled"))  # claims a wanted prefix, hashes to nothing asked
    payload.append(Payload(prefix_of(CID.for_block(b"x", DAG_PB)), b"a codec nothing is wanted of"))
    message = encode(Message(payload=payload, blocks=[b"old node", b"unasked old node"]))
    calls = counting(monkeypatch)
    received = bitswap._parse(message, frozenset([*WANTED, V0]))
    assert [b.cid for b in received.blocks] == [*WANTED, V0]
    assert received.unwanted == 3
    assert calls[0] == 6  # 3 wanted + 1 spoiled + 2 bare 1.0.0 blocks; the dag-pb one matched no want unhashed
    assert received.blocks[0].data == blocks[0]
