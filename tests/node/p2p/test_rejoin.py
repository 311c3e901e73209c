"""A peer that went down and came back at once (same key, same port) is reachable again at once.

py-libp2p 0.8.1 refuses, for 60 s, every dial to a peer whose addresses all failed once (the
swarm's negative peer cache). A survivor that re-dialled a restarting peer while it was down
(the bootstrap loop does so every ``BOOTSTRAP_RETRY``) therefore rejoined it a minute late, and a
request to a restarted peer failed for that minute. These tests make the survivor fail a dial
first, on a stand-in listener on the peer's port that takes connections and drops them, so the
library's cache is really filled before the peer comes back. The gossip case also needs the
stopped host to close its sockets and the survivor's hub to replace the pubsub stream left on the
old connection (node/p2p/pubsub_repair.py): without either, the restarted peer's gossip was lost.

Real hosts over loopback TCP, in one process; the SIGKILL case needs a process of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from node.cluster import free_port
from node.identity import NodeIdentity
from node.p2p import host as p2p_host
from node.p2p.host import GossipHandler
from node.p2p.network import P2PNetwork

TOPIC = "/mycel/test/rejoin"
ROOT = Path(__file__).resolve().parents[3]


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < timeout, f"not within {timeout} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def _network(seed: int, port: int = 0, bootstrap: tuple[str, ...] = (), **kwargs: object) -> P2PNetwork:
    identity = NodeIdentity.from_seed(bytes([seed]) * 32)
    network = P2PNetwork(identity, [f"/ip4/127.0.0.1/tcp/{port}"], bootstrap, **kwargs)  # type: ignore[arg-type]
    return network


@asynccontextmanager
async def _dropping_listener(port: int) -> AsyncIterator[Callable[[], int]]:
    """Stand in for a peer that is down but whose port answers: take each connection and drop
    it, so every dial there fails (as it does while a restarting node is not yet listening)."""
    accepted = [0]

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", port, reuse_address=True)
    try:
        yield lambda: accepted[0]
    finally:
        server.close()
        await server.wait_closed()


async def _connected(network: P2PNetwork, peer: str) -> bool:
    return peer in await network.peers()


async def _gone(network: P2PNetwork, peer: str) -> bool:
    return peer not in await network.peers()


def test_a_bootstrap_peer_restarted_at_once_is_rejoined_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(p2p_host, "BOOTSTRAP_RETRY", 0.3)  # the loop re-reads it each round

    async def main() -> None:
        port = free_port()
        peer = _network(1, port)
        await peer.start()
        survivor = _network(2, bootstrap=(f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer.peer_id}",))
        await survivor.start()
        try:
            await _until(lambda: _connected(survivor, peer.peer_id), 10)
            await peer.stop()
            await _until(lambda: _gone(survivor, peer.peer_id), 5)
            async with _dropping_listener(port) as accepted:
                # one whole dial failed: its first attempt and the library's 3 retries
                await _until(lambda: asyncio.sleep(0, accepted() >= 4), 10)
            peer = _network(1, port)  # same key, same port
            await peer.start()
            took = await _until(lambda: _connected(survivor, peer.peer_id), 10)
            assert took < 5  # was ~60 s: the library's negative cache refused every re-dial
            await _until(lambda: _connected(peer, survivor.peer_id), 5)
        finally:
            await survivor.stop()
            await peer.stop()

    asyncio.run(main())


def test_a_request_reaches_a_restarted_peer_once_its_gossip_is_heard() -> None:
    """The survivor's last dial to the peer failed while it was down; once a message the peer
    signed arrives (over a third node: the two have no connection), a request dials it again."""

    async def main() -> None:
        port, hub_port = free_port(), free_port()
        heard = asyncio.Event()

        async def on_gossip(origin: str, data: bytes) -> None:
            return None

        async def survivor_hears(origin: str, data: bytes) -> None:
            if data == b"back":
                heard.set()

        def subscribed(network: P2PNetwork, handler: GossipHandler = on_gossip) -> P2PNetwork:
            network.subscribe(TOPIC, lambda origin, data: True, handler)
            return network

        hub = subscribed(_network(3, hub_port))  # subscribed, so it forwards the topic
        hub_addr = f"/ip4/127.0.0.1/tcp/{hub_port}/p2p/{hub.peer_id}"
        peer = subscribed(_network(1, port, bootstrap=(hub_addr,)))
        peer_addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer.peer_id}"
        survivor = subscribed(_network(2, bootstrap=(hub_addr,), addresses=lambda _peer: [peer_addr]), survivor_hears)
        for network in (hub, peer, survivor):
            await network.start()
        try:
            assert await survivor.request(peer.peer_id, "/mycel/ping/1.0.0", b"", timeout=10) == [b"pong"]
            await peer.stop()
            await _until(lambda: _gone(survivor, peer.peer_id), 5)
            async with _dropping_listener(port):
                with pytest.raises(Exception):  # noqa: B017 - any failure: the peer is down
                    await survivor.request(peer.peer_id, "/mycel/ping/1.0.0", b"", timeout=10)
            peer = subscribed(_network(1, port, bootstrap=(hub_addr,)))
            await peer.start()
            await _until(lambda: _connected(peer, hub.peer_id), 10)
            deadline = time.monotonic() + 15
            while not heard.is_set():  # the gossip mesh forms after the connection: publish until heard
                assert time.monotonic() < deadline, "the survivor never heard the restarted peer"
                await peer.publish(TOPIC, b"back")
                await asyncio.sleep(0.2)
            assert not await _connected(survivor, peer.peer_id)  # heard over the hub, not directly
            assert await survivor.request(peer.peer_id, "/mycel/ping/1.0.0", b"", timeout=10) == [b"pong"]
        finally:
            for network in (survivor, peer, hub):
                await network.stop()

    asyncio.run(main())


_CHILD = """
import asyncio, sys
from node.identity import NodeIdentity
from node.p2p.network import P2PNetwork

async def main():
    network = P2PNetwork(NodeIdentity.from_seed(bytes([1]) * 32), [f"/ip4/127.0.0.1/tcp/{sys.argv[1]}"])
    await network.start()
    print(network.peer_id, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_the_survivor_stops_listing_a_peer_killed_by_sigkill_within_seconds() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(port)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert child.stdout is not None
        peer_id = child.stdout.readline().strip()
        assert peer_id, "the child peer did not start"

        async def main() -> float:
            survivor = _network(2, bootstrap=(f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id}",))
            await survivor.start()
            try:
                await _until(lambda: _connected(survivor, peer_id), 10)
                child.send_signal(signal.SIGKILL)
                child.wait(5)
                return await _until(lambda: _gone(survivor, peer_id), 10)
            finally:
                await survivor.stop()

        assert asyncio.run(main()) < 3  # measured ~0.15 s: the kernel closes its sockets
    finally:
        child.kill()
        child.wait(5)
