"""An idle host runs no loop for work that is not there: the bootstrap/trim round and the pubsub
stream repair run after a connection opens or closes, not every BOOTSTRAP_RETRY or second, and a
connection change reaches the asyncio side as an event (the announcer no longer polls the peers).

Real hosts over loopback TCP, in one process; the loops' periods are shortened so that a loop that
still polled would have run many times over in the quiet spell the test allows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from node.identity import NodeIdentity
from node.p2p import host as p2p_host
from node.p2p.connmgr import ConnectionManager
from node.p2p.network import P2PNetwork

QUIET = 0.3  # seconds the test lets pass with nothing happening: 30 periods of a polling loop


async def _until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if held if isinstance(held, bool) else await held:
            return
        assert time.monotonic() < deadline, f"not within {timeout} s"
        await asyncio.sleep(0.02)


def _network(seed: int, bootstrap: tuple[str, ...] = ()) -> P2PNetwork:
    identity = NodeIdentity.from_seed(bytes([seed]) * 32)
    return P2PNetwork(identity, ["/ip4/127.0.0.1/tcp/0"], bootstrap)


def test_the_bootstrap_round_and_the_pubsub_repair_sleep_until_a_connection_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(p2p_host, "BOOTSTRAP_RETRY", 0.01)
    monkeypatch.setattr(p2p_host, "PUBSUB_REPAIR_INTERVAL", 0.01)
    repairs, rounds = [0], [0]

    def repair(pubsub: Any) -> int:
        repairs[0] += 1
        return 0

    to_close = ConnectionManager.to_close

    def counted(self: ConnectionManager, connected: list[str]) -> list[str]:
        rounds[0] += 1
        return to_close(self, connected)

    monkeypatch.setattr(p2p_host, "repair_pubsub", repair)
    monkeypatch.setattr(ConnectionManager, "to_close", counted)
    changes = [0]

    async def main() -> None:
        hub = _network(1)
        hub.on_peers_changed(lambda: changes.__setitem__(0, changes[0] + 1))
        await hub.start()
        try:
            await _until(lambda: repairs[0] >= p2p_host.PUBSUB_REPAIR_ROUNDS and rounds[0] >= 1)
            await asyncio.sleep(QUIET)  # idle: a polling loop would run ~30 more times meanwhile
            assert repairs[0] == p2p_host.PUBSUB_REPAIR_ROUNDS and rounds[0] <= 2, (repairs, rounds)
            address = (await hub.addrs())[0] + "/p2p/" + hub.peer_id
            peer = _network(2, (address,))
            await peer.start()
            try:
                await _until(lambda: changes[0] >= 1)  # the connection, as an event on this loop
                await _until(lambda: repairs[0] >= 2 * p2p_host.PUBSUB_REPAIR_ROUNDS and rounds[0] >= 2)
                await asyncio.sleep(QUIET)  # the connection's events (a few) have had their rounds
                seen = repairs[0], rounds[0]
                await asyncio.sleep(QUIET)  # and then nothing more
                assert (repairs[0], rounds[0]) == seen
            finally:
                await peer.stop()
        finally:
            await hub.stop()

    asyncio.run(main())
