"""The node's relay settings as py-libp2p enforces them, on real hosts over loopback TCP (in one
trio run: no NAT is needed to reserve, dial through a relay or be refused): a reservation past
``relay_max_reservations`` is refused, a peer reached through the relay counts as ``relayed``,
and a node that is not a relay refuses to be one. The NAT cases are tests/harness/test_nat_jobs.py."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.tools.anyio_service import background_trio_service

from node.config import load_config
from node.errors import ConfigError
from node.p2p.natconfig import TraversalSettings
from node.p2p.traversal import Traversal


@contextlib.asynccontextmanager
async def _host(settings: TraversalSettings) -> AsyncIterator[Traversal]:
    host = new_host(key_pair=create_new_key_pair(os.urandom(32)))
    traversal = Traversal(host, settings)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]), background_trio_service(traversal.protocol):
        yield traversal


def _address(traversal: Traversal) -> str:
    return str(traversal.host.get_addrs()[0])


async def _reserve(client: Traversal, relay: Traversal, nursery: trio.Nursery) -> bool:
    info = info_from_p2p_addr(multiaddr.Multiaddr(_address(relay)))
    await client.host.connect(info)
    stream = await client.host.new_stream(info.peer_id, [HOP_PROTOCOL_ID])
    return bool(await client.transport.reserve(stream, info.peer_id, nursery))


def test_relay_limits_hold_and_a_relayed_peer_counts_as_relayed() -> None:
    async def main() -> None:
        with trio.fail_after(30):
            async with (
                _host(TraversalSettings(relay=True, relay_max_reservations=1)) as relay,
                _host(TraversalSettings()) as first,
                _host(TraversalSettings()) as second,
                trio.open_nursery() as nursery,
            ):
                assert await _reserve(first, relay, nursery)
                assert not await _reserve(second, relay, nursery)  # one slot, taken
                assert relay.relay_summary() == {"serving": True, "reservations": 1, "circuits": 0}
                me = first.host.get_id().to_base58()
                circuit = f"{_address(relay)}/p2p-circuit/p2p/{me}"
                assert await second.dial(first.host.get_id(), ["/ip4/127.0.0.1/tcp/1/p2p/" + me, circuit])
                assert second.kinds()[me] == "relayed" and first.kinds()[second.host.get_id().to_base58()] == "relayed"
                assert second.kinds()[relay.host.get_id().to_base58()] == "direct"
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_node_that_is_not_a_relay_refuses_reservations() -> None:
    async def main() -> None:
        with trio.fail_after(30):
            async with (
                _host(TraversalSettings()) as plain,
                _host(TraversalSettings()) as client,
                trio.open_nursery() as nursery,
            ):
                with pytest.raises(Exception, match="failed to open a stream"):  # no HOP handler: "na"
                    await _reserve(client, plain, nursery)
                assert not client.circuit_addrs() and plain.relay_summary()["serving"] is False
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_relay_settings_come_from_the_p2p_section_and_are_checked() -> None:
    settings = load_config(overrides={"p2p.relay": True, "p2p.relay_max_reservations": 3}).traversal_settings
    assert settings.relay and settings.relay_max_reservations == 3 and settings.relay_max_circuits == 16
    with pytest.raises(ConfigError, match="relay_max_circuit_bytes"):
        load_config(overrides={"p2p.relay_max_circuit_bytes": 0})
