"""The fetch pipeline: network and LMDB overlap, the queue between them is bounded, each block hashed once.

Two in-process nodes over real libp2p on 127.0.0.1; the DAGs are many small blocks so a
fetch has many batches while staying fast.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node import exchange as exchange_module
from node.exchange import BATCH, IN_FLIGHT, STORE_QUEUE, BlockExchange
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from storage import dagcbor
from storage.blockstore import BlockStore, VerifiedBlock, verify_block
from storage.cid import CID, DAG_CBOR
from storage.errors import BlockVerificationError, QuotaExceededError
from tests.support import seeded_bytes


class Peer:
    def __init__(self, tmp: Path, name: str, **store: Any) -> None:
        self.store = BlockStore(tmp / name, map_size=64 << 20, **store)
        self.network = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
        self.metrics = Metrics()
        self.exchange = BlockExchange(self.store, self.network, self.metrics)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Peer, Peer]]:
    server = Peer(tmp_path, "server", verify_on_get=False)  # only the fetcher hashes: counted below
    fetcher = Peer(tmp_path, "fetcher", quota=120_000)
    for peer in (server, fetcher):
        await peer.network.start()
    await fetcher.network.connect((await server.network.addrs())[0])
    yield server, fetcher
    for peer in (server, fetcher):
        await peer.network.stop()
        peer.exchange.close()
        peer.store.close()


def wide_dag(store: BlockStore, leaves: int, size: int = 1000) -> CID:
    """A dag-cbor root linking ``leaves`` raw blocks: one walk level, many batches."""
    links = []
    for index in range(leaves):
        data = seeded_bytes(f"leaf{index}", size)
        links.append(CID.for_block(data))
        store.put(links[-1], data)
    body = dagcbor.encode({"links": links})
    root = CID.for_block(body, DAG_CBOR)
    store.put(root, body)
    return root


async def test_network_keeps_going_while_a_commit_is_slow_and_the_queue_bounds_it(
    pair: tuple[Peer, Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, fetcher = pair
    batches = STORE_QUEUE + IN_FLIGHT + 4
    root = wide_dag(server.store, batches * BATCH, size=100)
    issued: list[int] = []
    real_request = fetcher.network.request

    async def counting(*args: Any, **kwargs: Any) -> list[bytes]:
        issued.append(1)
        return await real_request(*args, **kwargs)

    monkeypatch.setattr(fetcher.network, "request", counting)
    stalled = threading.Event()  # the queue to the writer is full: the fetch has to wait
    real_put = getattr(exchange_module, "_put_or_fail", None)

    async def watching_put(store_queue: asyncio.Queue[Any], *args: Any) -> None:
        if store_queue.full():
            stalled.set()
        assert real_put is not None
        await real_put(store_queue, *args)

    monkeypatch.setattr(exchange_module, "_put_or_fail", watching_put, raising=False)
    while_held: list[int] = []
    real_commit = fetcher.store._commit

    def held_first_commit(pending: list[tuple[bytes, bytes]]) -> int:
        if not while_held:  # the root's batch: held until the fetch can go no further without it
            stalled.wait(timeout=20)
            while_held.append(len(issued))
        return real_commit(pending)

    monkeypatch.setattr(fetcher.store, "_commit", held_first_commit)
    stats = await fetcher.exchange.fetch(root, [server.network.peer_id])
    assert stalled.is_set(), "the fetch never filled the queue: network and storage did not overlap"
    # more than one window went out while the first commit was held, and no more than the bound allows:
    # the root, STORE_QUEUE queued batches, IN_FLIGHT in flight and the one waiting to be queued
    assert 1 + IN_FLIGHT < while_held[0] <= 1 + STORE_QUEUE + IN_FLIGHT + 1 < 1 + batches
    assert stats.blocks_fetched == batches * BATCH + 1
    assert fetcher.store.missing_blocks(root) == []


async def test_every_block_is_hashed_exactly_once_on_arrival(
    pair: tuple[Peer, Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, fetcher = pair
    root = wide_dag(server.store, 5 * BATCH + 3)
    hashed: list[CID] = []
    real = CID.matches

    def counting(self: CID, data: bytes | memoryview) -> bool:
        hashed.append(self)
        return real(self, data)

    monkeypatch.setattr(CID, "matches", counting)
    stats = await fetcher.exchange.fetch(root, [server.network.peer_id])
    monkeypatch.setattr(CID, "matches", real)
    assert stats.blocks_fetched == 5 * BATCH + 4
    assert sorted(hashed) == sorted({*hashed}) and len(hashed) == stats.blocks_fetched
    assert list(fetcher.store.verify_all()) == []


async def test_a_failed_write_ends_the_fetch_with_its_error(pair: tuple[Peer, Peer]) -> None:
    server, fetcher = pair
    root = wide_dag(server.store, 10 * BATCH)  # 160 kB: over the fetcher's 120 kB quota
    with pytest.raises(QuotaExceededError):
        await asyncio.wait_for(fetcher.exchange.fetch(root, [server.network.peer_id]), 30)
    assert fetcher.store.stats().bytes <= 120_000


def test_only_verify_block_makes_what_put_verified_stores(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "s", map_size=8 << 20)
    try:
        data = b"some block"
        cid = CID.for_block(data)
        with pytest.raises(BlockVerificationError):
            verify_block(cid, b"other bytes")
        with pytest.raises(TypeError):
            VerifiedBlock(cid, b"other bytes", object())  # no forged proof of verification
        with pytest.raises(TypeError):
            store.put_verified([(cid, data)])  # type: ignore[list-item]
        assert not store.has(cid)
        assert store.put_verified([verify_block(cid, data)]) == 1
        assert store.get(cid) == data
    finally:
        store.close()
