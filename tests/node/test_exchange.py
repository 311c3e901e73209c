"""Block exchange between in-process nodes over real libp2p on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import nacl.signing
import pytest

from node.errors import NetworkError
from node.exchange import PROTOCOL, BlockExchange
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from storage import dagcbor
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.files import add_path, cat
from storage.varint import decode_uvarint
from tests.support import seeded_bytes


class Peer:
    def __init__(self, tmp: Path, name: str) -> None:
        self.store = BlockStore(tmp / name, map_size=8 << 20)
        self.network = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
        self.metrics = Metrics()
        self.exchange = BlockExchange(self.store, self.network, self.metrics)


@pytest.fixture
async def trio_peers(tmp_path: Path) -> AsyncIterator[tuple[Peer, Peer, Peer]]:
    honest, evil, fetcher = Peer(tmp_path, "honest"), Peer(tmp_path, "evil"), Peer(tmp_path, "fetcher")

    async def corrupting(peer: str, request: bytes) -> list[bytes]:
        frames = await honest.exchange._serve(peer, request)
        spoiled = []
        for parts in frames:
            item = parts if isinstance(parts, bytes) else b"".join(parts)
            if item[:1] == b"\x01":
                length, pos = decode_uvarint(item, 1)
                body = bytearray(item)
                body[pos + length] ^= 0xFF  # flip the block's first byte
                item = bytes(body)
            spoiled.append(item)
        return spoiled

    evil.network.handle(PROTOCOL, corrupting)
    for peer in (honest, evil, fetcher):
        await peer.network.start()
    for peer in (honest, evil):
        await fetcher.network.connect((await peer.network.addrs())[0])
    yield honest, evil, fetcher
    for peer in (honest, evil, fetcher):
        await peer.network.stop()
        peer.store.close()


async def test_dag_fetched_and_verified(trio_peers: tuple[Peer, Peer, Peer], tmp_path: Path) -> None:
    honest, _, fetcher = trio_peers
    (tmp_path / "f").write_bytes(seeded_bytes("exchange", 2_000_000))
    root = add_path(honest.store, tmp_path / "f").cid
    assert await fetcher.exchange.find_providers(root) == [honest.network.peer_id]
    stats = await fetcher.exchange.fetch(root)
    assert stats.blocks_fetched == 9 and stats.bad_providers == 0
    assert fetcher.exchange.bandwidth[honest.network.peer_id] > 1e6  # measured, for placement
    assert b"".join(cat(fetcher.store, root)) == (tmp_path / "f").read_bytes()
    again = await fetcher.exchange.fetch(root)  # resumes: nothing left to move
    assert again.blocks_fetched == 0 and again.blocks_local == 9


async def test_corrupt_provider_loses_to_honest_one(trio_peers: tuple[Peer, Peer, Peer], tmp_path: Path) -> None:
    honest, evil, fetcher = trio_peers
    (tmp_path / "f").write_bytes(seeded_bytes("evil", 700_000))
    root = add_path(honest.store, tmp_path / "f").cid
    stats = await fetcher.exchange.fetch(root, providers=[evil.network.peer_id, honest.network.peer_id])
    assert stats.bad_providers == 1
    assert fetcher.metrics.value("blocks_rejected_total") == 1
    assert b"".join(cat(fetcher.store, root)) == (tmp_path / "f").read_bytes()
    assert list(fetcher.store.verify_all()) == []


async def test_only_bad_providers_fail_clearly(trio_peers: tuple[Peer, Peer, Peer], tmp_path: Path) -> None:
    honest, evil, fetcher = trio_peers
    (tmp_path / "f").write_bytes(b"tiny")
    root = add_path(honest.store, tmp_path / "f").cid
    with pytest.raises(NetworkError, match="no provider"):
        await fetcher.exchange.fetch(root, providers=[evil.network.peer_id])
    assert not fetcher.store.has(root)


async def test_malformed_requests_get_empty_answers(trio_peers: tuple[Peer, Peer, Peer]) -> None:
    honest, _, fetcher = trio_peers
    for junk in (b"", b"\xff\xff", dagcbor.encode({"want": "x"}), dagcbor.encode({"want": [1] * 500})):
        frames = await fetcher.network.request(honest.network.peer_id, PROTOCOL, junk)
        assert frames == []
    missing = CID.for_block(b"nobody has this")
    frames = await fetcher.network.request(honest.network.peer_id, PROTOCOL, dagcbor.encode({"want": [missing]}))
    assert frames[0][:1] == b"\x00"


async def test_dht_finds_a_provider_that_is_not_connected(tmp_path: Path) -> None:
    """A - B - C in a line: C finds A through the DHT provider record and fetches from it."""
    a, b, c = Peer(tmp_path, "a"), Peer(tmp_path, "b"), Peer(tmp_path, "c")
    for peer in (a, b, c):
        await peer.network.start()
    try:
        b_addr = (await b.network.addrs())[0]
        await a.network.connect(b_addr)
        await c.network.connect(b_addr)
        (tmp_path / "f").write_bytes(seeded_bytes("dht", 300_000))
        root = add_path(a.store, tmp_path / "f").cid
        assert await a.network.provide(str(root))
        assert a.network.peer_id not in await c.network.peers()
        assert a.network.peer_id in await c.network.find_providers(str(root))
        assert await c.exchange.find_providers(root) == [a.network.peer_id]
        stats = await c.exchange.fetch(root)
        assert stats.blocks_fetched == 3
        assert b"".join(cat(c.store, root)) == (tmp_path / "f").read_bytes()
    finally:
        for peer in (a, b, c):
            await peer.network.stop()
            peer.store.close()


async def test_have_probe_for_a_pinned_dag_answers_without_a_walk(
    trio_peers: tuple[Peer, Peer, Peer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest, _, fetcher = trio_peers
    (tmp_path / "f").write_bytes(seeded_bytes("probe", 600_000))
    root = add_path(honest.store, tmp_path / "f").cid  # pinned
    expected = honest.store.complete_dag_size(root)

    def no_walk(*args: object) -> None:
        raise AssertionError("a have probe walked the DAG")

    monkeypatch.setattr(honest.store, "_sized_walk", no_walk)
    assert await fetcher.exchange.probe(honest.network.peer_id, root) == expected


async def test_have_probe_for_an_unpinned_dag_walks_off_the_loop(
    trio_peers: tuple[Peer, Peer, Peer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest, _, fetcher = trio_peers
    (tmp_path / "f").write_bytes(seeded_bytes("unpinned", 600_000))
    root = add_path(honest.store, tmp_path / "f", pin=False).cid
    loop_thread = threading.current_thread()
    walked_in: list[threading.Thread] = []
    real = honest.store.complete_dag_size

    def recording(cid: CID) -> int | None:
        walked_in.append(threading.current_thread())
        return real(cid)

    monkeypatch.setattr(honest.store, "complete_dag_size", recording)
    assert await fetcher.exchange.probe(honest.network.peer_id, root) == real(root)
    assert walked_in and loop_thread not in walked_in
