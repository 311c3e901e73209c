"""Plain py-libp2p hosts for checking relay, AutoNAT and DCUtR through the harness NAT, before any
node wiring: ``python -m tests.harness.libp2p_probe ROLE LISTEN SEED [RELAY_ADDR [TARGET_ID]]``.

Roles: ``relay`` (hop + AutoNAT server), ``listener`` (behind NAT: asks AutoNAT, reserves a slot on
the relay, answers /probe/echo), ``dialer`` (dials the listener's /p2p-circuit address, echoes,
then waits for DCUtR to make the connection direct). Each prints JSON lines on stdout; it runs
until stdin closes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.autonat import AutoNATService
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service

ECHO = TProtocol("/probe/echo/1.0.0")
LIMITS = RelayLimits(duration=600, data=1 << 26, max_circuit_conns=8, max_reservations=8)


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def kinds(host: Any, peer: ID) -> list[str]:
    """'relayed' or 'direct' for each connection to ``peer``."""
    conns = host.get_network().get_connections(peer)
    out = []
    for conn in conns:
        addrs = [str(a) for a in conn.get_transport_addresses()]
        out.append("relayed" if any("/p2p-circuit" in a for a in addrs) else "direct")
    return out


async def echo(stream: Any) -> None:
    data = await stream.read(1024)
    await stream.write(data)
    await stream.close()


async def stdin_closed() -> None:
    stream = trio.lowlevel.FdStream(0)
    while await stream.receive_some(1024):
        pass


async def main(role: str, listen: str, seed: int, relay_addr: str = "", target: str = "") -> None:
    key_pair = create_new_key_pair(seed.to_bytes(32, "big"))
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_preference="YAMUX",
        connection_config=ConnectionConfig(max_connections_per_peer=4),
    )
    protocol = CircuitV2Protocol(host, limits=LIMITS, allow_hop=role == "relay")
    autonat = AutoNATService(host, confirmations=1)  # type: ignore[arg-type]
    dcutr = DCUtRProtocol(host)
    host.set_stream_handler(ECHO, echo)
    async with (
        host.run(listen_addrs=[multiaddr.Multiaddr(listen)]),
        background_trio_service(protocol),
        background_trio_service(dcutr),
        trio.open_nursery() as nursery,
    ):
        say(event="up", id=host.get_id().to_base58(), addrs=[str(a) for a in host.get_addrs()])
        config = RelayConfig(roles=RelayRole.STOP | RelayRole.CLIENT, limits=LIMITS)
        transport = CircuitV2Transport(host, protocol, config)
        if role != "relay":
            relay = info_from_p2p_addr(multiaddr.Multiaddr(relay_addr))
            await host.connect(relay)
            say(event="connected-relay")
        if role == "listener":
            with trio.move_on_after(15):
                status = await autonat.check_reachability([relay.peer_id])
                say(event="autonat", status={0: "unknown", 1: "public", 2: "private"}[status])
            stream = await host.new_stream(relay.peer_id, [HOP_PROTOCOL_ID])
            reserved = await transport.reserve(stream, relay.peer_id, nursery)
            say(event="reserved", ok=reserved, circuit=f"{relay_addr}/p2p-circuit/p2p/{host.get_id().to_base58()}")
        if role == "dialer":
            peer = ID.from_base58(target)
            circuit = multiaddr.Multiaddr(f"{relay_addr}/p2p-circuit/p2p/{target}")
            started = trio.current_time()
            try:
                await transport.dial(circuit)
                say(event="dialed", kinds=kinds(host, peer), s=round(trio.current_time() - started, 3))
                stream = await host.new_stream(peer, [ECHO])
                await stream.write(b"ping")
                say(event="echo", data=(await stream.read(16)).decode(), kinds=kinds(host, peer))
                await stream.close()
            except Exception as exc:
                say(event="error", step="relayed dial", error=f"{type(exc).__name__}: {exc}")
            with trio.move_on_after(20):
                while "direct" not in kinds(host, peer):
                    await trio.sleep(0.2)
            say(event="final", kinds=kinds(host, peer), s=round(trio.current_time() - started, 3))
        await stdin_closed()
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    args = sys.argv[1:]
    trio.run(main, args[0], args[1], int(args[2]), *args[3:])
