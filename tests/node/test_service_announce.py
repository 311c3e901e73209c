"""What a stored root costs the network: one DHT provide per root, an announcement only when
the content summary changed (a job that returns the same result again costs no gossip), and a
summary rebuilt from the pins only when they changed.

The node's own provide and announce-loop methods run on a real block store and privacy
registry; only the libp2p host is a stand-in that counts provides and publishes (what crosses
the network is not what these tests look at).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from types import MethodType, SimpleNamespace
from typing import Any

import pytest

from node.announce import PeerTable
from node.metrics import Metrics
from node.privacy.registry import PrivacyRegistry
from node.scheduler import holdings
from node.service import NodeService
from node.streams.policy import PolicyGate
from node.streams.store import StreamStore
from storage.blockstore import BlockStore
from storage.cid import CID


class Network:
    def __init__(self) -> None:
        self.provided: list[str] = []
        self.published: list[bytes] = []
        self.changed = asyncio.Event()

    async def provide(self, key: str) -> bool:
        self.provided.append(key)
        return True

    async def peers(self) -> list[str]:
        return ["12D3KooWPeer"]

    async def addrs(self) -> list[str]:
        return ["/ip4/127.0.0.1/tcp/4001"]

    async def publish(self, topic: str, data: bytes) -> None:
        self.published.append(data)
        self.changed.set()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Any]:
    """NodeService's provide and announce loop over a real store and registry; announcements
    are recorded as the summary they carry (the signing is announce.py's, tested there)."""
    service: Any = NodeService.__new__(NodeService)
    service.store = BlockStore(tmp_path / "blocks")
    service.privacy = PrivacyRegistry(tmp_path / "privacy")
    service.metrics = Metrics()
    service.network = Network()
    streams = StreamStore(tmp_path / "streams")  # stream policies: which snapshots are withheld
    service.streams = SimpleNamespace(heads=lambda: {}, policy=PolicyGate(streams))
    service.config = SimpleNamespace(get=lambda section, key: 3600.0)  # no heartbeat during a test
    service.peers = PeerTable(3600.0, 3600.0)  # the heartbeat's period (an hour: none during a test)
    service._provides = set()
    service._seq = 0
    service._announce_soon = asyncio.Event()
    service._content_changed = False
    service._wake = asyncio.Event()
    service._held = holdings.HoldingsCache(
        lambda: holdings.summarize(service.store.pins(), service._withheld),
        lambda: (service.store.pin_writes, service.privacy.locks),
    )
    service.sent = []
    service._announcement = MethodType(lambda self, addrs, held: self.sent.append(held) or b"a", service)
    service._provided = OrderedDict()
    try:
        yield service
    finally:
        service.store.close()
        service.privacy.close()
        streams.close()


def stored(node: Any, text: bytes) -> CID:
    root = CID.for_block(text)
    node.store.put(root, text)
    node.store.pin(root, "test")
    return root


async def settled(node: Any) -> None:
    """Until every provide started so far is done."""
    await asyncio.gather(*list(node._provides))


async def test_a_root_stored_again_is_provided_once(node: Any) -> None:
    root = stored(node, b"result")
    for _ in range(5):  # five jobs that returned the same result
        node.provide(root)
        await settled(node)
    other = stored(node, b"other result")
    node.provide(other)
    await settled(node)
    assert node.network.provided == [str(root), str(other)]
    assert node.metrics.value("dht_provides_total") == 2


async def test_a_failed_provide_is_tried_again_at_the_next_store(node: Any) -> None:
    async def fails(key: str) -> bool:
        node.network.provided.append(key)
        return False

    node.network.provide = fails
    root = stored(node, b"result")
    node.provide(root)
    await settled(node)
    node.provide(root)
    await settled(node)
    assert node.network.provided == [str(root), str(root)]


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_an_announcement_goes_out_when_the_summary_changes_not_per_store(
    node: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("node.service.ANNOUNCE_GAP", 0.0)
    loop = asyncio.create_task(node._announce_loop())
    try:
        await wait_for(lambda: len(node.sent) == 1)  # at start
        root = stored(node, b"result")
        node.provide(root)
        await wait_for(lambda: len(node.sent) == 2)
        assert root in node.sent[-1].roots
        builds = node._held.builds
        for _ in range(5):  # the same result again: nothing new to say
            node.provide(root)
            await asyncio.sleep(0)
        await wait_for(lambda: not node._content_changed and not node._wake.is_set())
        await asyncio.sleep(0.05)  # a turn of the loop that would announce has had its chance
        assert len(node.sent) == 2
        other = stored(node, b"another")
        node.provide(other)
        await wait_for(lambda: len(node.sent) == 3)
        assert other in node.sent[-1].roots
        assert node._held.builds == builds + 1  # rebuilt for the new pin only
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


def test_the_summary_is_rebuilt_only_when_pins_or_privacy_changed(node: Any) -> None:
    cache = node._held
    first = stored(node, b"one")
    assert first in cache.current().roots
    builds = cache.builds
    assert cache.current() is cache.current() and cache.builds == builds  # nothing changed: no rescan
    second = stored(node, b"two")
    assert second in cache.current().roots and cache.builds == builds + 1
    node.privacy.lock(second, "owner", [])  # made private after it was summarized
    assert second not in cache.current().roots
    node.store.unpin(first)
    assert first not in cache.current().roots
    before = cache.builds
    cache.current(fresh=True)  # the heartbeat rescans regardless (pins written by another process)
    assert cache.builds == before + 1


async def test_an_idle_announce_loop_sleeps_until_the_heartbeat_and_a_connection_change_wakes_it(
    node: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No poll: between announcements the loop waits for the heartbeat (an hour here), not for
    0.5 s or 1 s to look at the connected peers again; a connection change wakes it."""
    monkeypatch.setattr("node.service.ANNOUNCE_GAP", 0.0)
    waits: list[float] = []
    wait_for = asyncio.wait_for

    async def recorded(awaitable: Any, timeout: float) -> Any:
        waits.append(timeout)
        return await wait_for(awaitable, timeout)

    monkeypatch.setattr("node.service.asyncio.wait_for", recorded)
    peers = ["12D3KooWPeer"]

    async def connected() -> list[str]:
        return list(peers)

    node.network.peers = connected
    loop = asyncio.create_task(node._announce_loop())
    try:
        await wait_for_(lambda: len(node.sent) == 1 and len(waits) == 1)  # at start, then asleep
        assert waits[0] > 3000, waits  # until the heartbeat is due
        peers.append("12D3KooWOther")  # a peer connected: the host's connection event says so
        node._peers_changed()
        await wait_for_(lambda: len(node.sent) == 2)
        await wait_for_(lambda: len(waits) == 2)
        assert waits[1] > 3000, waits
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


wait_for_ = wait_for
