"""NAT traversal for the libp2p host: AutoNAT, circuit relay v2 and DCUtR, from py-libp2p.

Runs inside the trio thread, next to :class:`node.p2p.host.Libp2pHost`, and only it calls this.

- Every node answers AutoNAT dial-back requests and accepts relayed connections (relay STOP).
- With ``[p2p] relay = true`` it also relays for others (HOP), within limits: reservations,
  circuits at once, bytes and seconds per circuit.
- Every ``check_interval`` seconds, until it knows, a node asks the peers it is directly connected
  to whether they can dial it back (AutoNAT). Found unreachable, it reserves a slot on a connected
  peer that relays and adds ``<relay>/p2p-circuit/p2p/<self>`` to its addresses, which go into
  its announcement; peers then dial it through the relay (:meth:`Traversal.dial`).
- DCUtR runs on every node: over a relayed connection the two ends exchange their observed
  addresses and dial each other at once, so the connection becomes direct where the NATs allow
  it (hole punching), and stays relayed otherwise.

py-libp2p 0.8.1 specifics (checked in the WAN harness with plain hosts first, see
tests/harness/libp2p_probe.py): DCUtR hole punching between two NAT'd hosts works; between a NAT'd
host and a public one it does not end direct (the public side's listener takes the punch dial
while both ends upgrade as the responder), which matters little here: a NAT'd node dials public
peers out directly anyway. The AutoNAT server dials back with ``host.connect``, which returns the
connection already open, so a peer is judged by whether its announced address matches the IP it
is seen from: right for a NAT (its private address never matches), and the reason a node needs
a verdict from more than one peer before it counts as public.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
import multiaddr
from libp2p.host.autonat import AutoNATService, AutoNATStatus
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service

from node.p2p.natconfig import TraversalSettings

log = logging.getLogger("mycelnet.p2p.traversal")

Reachability = Literal["unknown", "public", "private"]
ConnectionKind = Literal["direct", "relayed"]
CIRCUIT = "/p2p-circuit"
_STATUS: dict[int, Reachability] = {
    AutoNATStatus.UNKNOWN: "unknown",
    AutoNATStatus.PUBLIC: "public",
    AutoNATStatus.PRIVATE: "private",
}
_QUERY_TIMEOUT = 10.0
_MAX_SERVERS = 4  # AutoNAT verdicts asked for per check
_MAX_CIRCUIT_ADDRS = 4  # relayed addresses announced at most


def relay_limits(settings: TraversalSettings) -> RelayLimits:
    return RelayLimits(
        duration=settings.relay_max_circuit_seconds,
        data=settings.relay_max_circuit_bytes,
        max_circuit_conns=settings.relay_max_circuits,
        max_reservations=settings.relay_max_reservations,
        reservation_ttl=settings.relay_reservation_ttl_seconds,
    )


class Traversal:
    """AutoNAT client and server, relay (STOP, and HOP when configured), DCUtR, reservations."""

    def __init__(self, host: Any, settings: TraversalSettings) -> None:
        self.host = host
        self.settings = settings
        limits = relay_limits(settings)
        self.protocol = CircuitV2Protocol(host, limits=limits, allow_hop=settings.relay)
        roles = RelayRole.STOP | RelayRole.CLIENT | (RelayRole.HOP if settings.relay else RelayRole(0))
        self.transport = CircuitV2Transport(host, self.protocol, RelayConfig(roles=roles, limits=limits))
        self.autonat = AutoNATService(host, serve=True, confirmations=settings.autonat_confirmations)
        self.dcutr = DCUtRProtocol(host)
        self.circuits: dict[str, str] = {}  # relay peer ID -> our address through it

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with background_trio_service(self.protocol), background_trio_service(self.dcutr):
            yield

    # -- what the node reports ----------------------------------------------------------
    def reachability(self) -> Reachability:
        return _STATUS.get(self.autonat.get_status(), "unknown")

    def circuit_addrs(self) -> list[str]:
        return sorted(self.circuits.values())

    def kinds(self) -> dict[str, ConnectionKind]:
        """Each connected peer: ``direct`` if any connection to it is, else ``relayed``."""
        found: dict[str, ConnectionKind] = {}
        for peer, conns in self.host.get_network().get_connections_map().items():
            if not conns:
                continue
            kinds = {_kind(conn) for conn in conns}
            found[peer.to_base58()] = "direct" if "direct" in kinds else "relayed"
        return found

    def hole_punches(self) -> dict[str, dict[str, Any]]:
        """DCUtR per peer: attempts made (it gives up after a few) and whether one is under way."""
        attempts: dict[Any, int] = self.dcutr._hole_punch_attempts
        running: set[Any] = self.dcutr._in_progress
        return {
            peer.to_base58(): {"attempts": count, "in_progress": peer in running} for peer, count in attempts.items()
        }

    def relay_summary(self) -> dict[str, Any]:
        """What this node serves as a relay (reservations held by others, circuits open)."""
        manager = self.protocol.resource_manager
        return {
            "serving": self.settings.relay,
            "reservations": len(getattr(manager, "_reservations", {})),
            "circuits": len(self.protocol._active_relays),
        }

    # -- dialing ---------------------------------------------------------------------------
    async def dial(self, peer: ID, addrs: list[str]) -> bool:
        """Connect to ``peer`` through one of its relayed addresses; False when none works."""
        for address in addrs:
            if CIRCUIT not in address or not address.endswith(f"/p2p/{peer.to_base58()}"):
                continue
            try:
                with anyio.fail_after(_QUERY_TIMEOUT):
                    await self.transport.dial(multiaddr.Multiaddr(address))
                return True
            except Exception as exc:
                log.info("relayed dial to %s via %s failed: %s", peer, address, exc)
        return False

    # -- the reachability loop -------------------------------------------------------------
    async def loop(self) -> None:
        """Check reachability until known; behind NAT keep one reservation on a relay (the task
        group holds the transport's reservation refresher)."""
        me = self.host.get_id()
        async with anyio.create_task_group() as group:
            refresher = _Nursery(group)
            while True:
                try:
                    await self._check()
                    if self.reachability() == "private":
                        await self._keep_reservation(me, refresher)
                except Exception as exc:  # a peer vanishing mid-check: try again next round
                    log.info("NAT traversal round failed: %s: %s", type(exc).__name__, exc)
                await anyio.sleep(self.settings.autonat_interval_seconds)

    async def _check(self) -> None:
        if self.reachability() != "unknown":
            return
        servers = [peer for peer, kind in self.kinds().items() if kind == "direct"][:_MAX_SERVERS]
        for server in servers:
            try:
                with anyio.fail_after(_QUERY_TIMEOUT):
                    await self.autonat.query_server(ID.from_base58(server))
            except Exception as exc:
                log.debug("AutoNAT query to %s failed: %s", server, exc)  # no verdict either way
        self.autonat.update_status()
        if self.reachability() != "unknown":
            log.info("AutoNAT: this node is %s", self.reachability())

    async def _keep_reservation(self, me: ID, refresher: _Nursery) -> None:
        connected = self.kinds()
        for relay in list(self.circuits):
            if connected.get(relay) != "direct":
                del self.circuits[relay]  # the relay is gone: its slot with it
        if self.circuits:
            return
        for peer_text, kind in connected.items():
            peer = ID.from_base58(peer_text)
            if kind != "direct" or HOP_PROTOCOL_ID not in _protocols(self.host, peer):
                continue
            relay_addr = self._public_addr(peer)
            if relay_addr is None:
                continue
            with anyio.fail_after(_QUERY_TIMEOUT):
                stream = await self.host.new_stream(peer, [HOP_PROTOCOL_ID])
                ok = await self.transport.reserve(stream, peer, refresher)  # type: ignore[arg-type]
            if ok:
                self.circuits[peer_text] = f"{relay_addr}/p2p/{peer_text}{CIRCUIT}/p2p/{me.to_base58()}"
                log.info("reserved a relay slot: %s", self.circuits[peer_text])
                return  # one relay is enough to be reachable

    def _public_addr(self, peer: ID) -> str | None:
        """The relay's address as we reached it (a direct connection's remote address)."""
        for conn in self.host.get_network().get_connections(peer):
            for addr in conn.get_transport_addresses():
                text = str(addr)
                if CIRCUIT not in text and "/tcp/" in text:
                    return text.split("/p2p/", 1)[0]
        return None


class _Nursery:
    """Lets ``CircuitV2Transport.reserve`` start its refresh task in an anyio task group."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def start_soon(self, fn: Any, *args: Any) -> None:
        self._group.start_soon(fn, *args)


def _kind(conn: Any) -> ConnectionKind:
    try:
        addrs = [str(a) for a in conn.get_transport_addresses()]
    except Exception:
        return "direct"
    return "relayed" if any(CIRCUIT in a for a in addrs) else "direct"


def _protocols(host: Any, peer: ID) -> list[str]:
    try:
        return [str(p) for p in host.get_peerstore().get_protocols(peer)]
    except Exception:
        return []
