"""The /mycel/blocks server bounds amplification: duplicate wants, concurrent requests per peer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import nacl.signing
import pytest

from node import exchange as exchange_module
from node.exchange import MAX_QUEUED_PER_PEER, MAX_SERVING_PER_PEER, BlockExchange
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.p2p.framing import coalesced, frame_size
from node.p2p.network import P2PNetwork
from storage import dagcbor
from storage.blockstore import BlockStore
from storage.cid import CID


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BlockExchange]:
    """An exchange that is never started: its handler is called directly, as the network would."""
    store = BlockStore(tmp_path / "blocks", map_size=8 << 20)
    network = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
    exchange = BlockExchange(store, network, Metrics())
    yield exchange
    exchange.close()
    store.close()


async def test_a_block_wanted_many_times_in_one_request_is_sent_once(server: BlockExchange) -> None:
    block = bytes(256 << 10)
    cid = CID.for_block(block)
    server.store.put(cid, block)
    request = dagcbor.encode({"want": [cid] * exchange_module.MAX_WANT})
    frames = await server._serve("peer", request)
    assert len(frames) == 1 and frame_size(frames[0]) > len(block)
    wire = b"".join(coalesced(frames, 1 << 20))
    assert wire.endswith(block) and len(wire) < len(block) + 100  # not 128 copies (32 MiB)


async def test_concurrent_requests_per_peer_are_bounded(server: BlockExchange, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    changed = threading.Condition()
    running: dict[str, int] = {"greedy": 0, "polite": 0}
    peak = 0

    def slow_frames(asker: str, wants: list[CID]) -> list[bytes]:
        nonlocal peak
        peer = "polite" if wants[0] == polite_cid else "greedy"
        with changed:
            running[peer] += 1
            peak = max(peak, running["greedy"])
            changed.notify_all()
        if peer == "greedy":
            release.wait(30)
        with changed:
            running[peer] -= 1
        return [b"\x00"]

    def wait_until(predicate: Callable[[], bool]) -> bool:
        with changed:
            return changed.wait_for(predicate, 30)

    polite_cid = CID.for_block(b"polite")
    monkeypatch.setattr(server, "_frames_for", slow_frames)
    request = dagcbor.encode({"want": [CID.for_block(b"x")]})
    admitted = MAX_SERVING_PER_PEER + MAX_QUEUED_PER_PEER
    tasks = [asyncio.create_task(server._serve("greedy", request)) for _ in range(admitted)]
    assert await asyncio.to_thread(wait_until, lambda: running["greedy"] == MAX_SERVING_PER_PEER)
    assert server._peer_budgets["greedy"].admitted == admitted  # the rest wait their turn
    assert await server._serve("greedy", request) == []  # one more: refused at once
    assert server.metrics.value("block_requests_refused_total") == 1
    polite = dagcbor.encode({"want": [polite_cid]})
    assert await asyncio.wait_for(server._serve("polite", polite), 30) == [b"\x00"]  # not starved by greedy
    release.set()
    answers = await asyncio.gather(*tasks)
    assert answers == [[b"\x00"]] * admitted
    assert peak == MAX_SERVING_PER_PEER
    assert server._peer_budgets == {}
