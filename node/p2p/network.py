"""The small asyncio interface the rest of the node uses for networking.

``publish``/``subscribe`` (signed announcements), ``request`` (one request, a stream of
reply frames, over ``/mycel/*`` protocols), ``handle_messages``/``send_messages`` (one-way
message streams, as Bitswap uses), ``connect``, ``peers``, ``ping``. The
scheduler and tests depend on this, never on py-libp2p directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from node.identity import NodeIdentity
from node.p2p.bridge import TrioBridge
from node.p2p.connmgr import ConnectionLimits
from node.p2p.host import (
    GossipHandler,
    GossipValidator,
    HostSettings,
    Libp2pHost,
    MessageHandler,
    MessageProtocol,
    RequestHandler,
)
from node.p2p.inbound import InboundCounters, InboundLimits
from node.p2p.natconfig import TraversalSettings
from node.p2p.sessions import SessionProtocol

PING_PROTOCOL = "/mycel/ping/1.0.0"


async def _pong(peer: str, payload: bytes) -> list[bytes]:
    return [b"pong"]


class P2PNetwork:
    def __init__(
        self,
        identity: NodeIdentity,
        listen: Sequence[str],
        bootstrap: Sequence[str] = (),
        mdns: bool = False,
        inbound: InboundLimits | None = None,
        connections: ConnectionLimits | None = None,
        addresses: Callable[[str], Sequence[str]] | None = None,
        traversal: TraversalSettings | None = None,
    ) -> None:
        """``addresses(peer)``: where ``peer`` said it listens (its announcement), for dialing it
        on demand when no connection to it is open."""
        self._settings = HostSettings(
            seed=identity.seed,
            listen=list(listen),
            bootstrap=list(bootstrap),
            mdns=mdns,
            inbound=inbound or InboundLimits(),
            connections=connections or ConnectionLimits(),
            traversal=traversal or TraversalSettings(),
        )
        self._addresses = addresses
        self._settings.request_handlers[PING_PROTOCOL] = _pong
        self._bridge = TrioBridge()
        self._host: Libp2pHost | None = None
        self.peer_id = identity.peer_id

    def handle(self, protocol: str, handler: RequestHandler) -> None:
        """Serve ``protocol``: ``handler(peer_id, request) -> reply frames`` (register before start)."""
        self._settings.request_handlers[protocol] = handler

    def handle_session(self, protocol: str, handler: RequestHandler, max_request: int) -> None:
        """Serve ``protocol`` as a session (many requests on one long-lived stream per peer,
        :mod:`node.p2p.sessions`): ``handler(peer_id, request) -> reply frames`` (before start)."""
        self._settings.session_protocols[protocol] = SessionProtocol(handler, max_request)

    async def session_request(self, peer_id: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]:
        """Like :meth:`request`, on the peer's session stream of ``protocol`` (opened at the first)."""
        addrs = tuple(self._addresses(peer_id)) if self._addresses is not None else ()
        return await self._bridge.call(self._require().session_request, peer_id, protocol, payload, timeout, addrs)

    def streams_opened(self) -> int:
        """Outbound request and session streams opened so far (a plain int, safe to read)."""
        host = self._host
        return host.streams_opened if host else 0

    def handle_messages(self, protocols: Sequence[str], handler: MessageHandler, max_message: int) -> None:
        """Receive one-way messages on ``protocols``: ``handler(peer_id, protocol, message)`` (before start)."""
        for protocol in protocols:
            self._settings.message_protocols[protocol] = MessageProtocol(handler, max_message)

    async def send_messages(
        self, peer_id: str, protocols: Sequence[str], messages: Sequence[bytes], timeout: float = 30.0
    ) -> str:
        """Send ``messages`` on a new stream of the first of ``protocols`` the peer speaks (returned)."""
        return await self._bridge.call(self._require().send_messages, peer_id, list(protocols), list(messages), timeout)

    def on_peers_changed(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the asyncio loop whenever a connection opens or closes (before
        start), so a caller learns of a new or lost peer without asking for the list in a loop."""
        self._settings.peers_changed = callback

    def subscribe(self, topic: str, validator: GossipValidator, handler: GossipHandler) -> None:
        """Receive ``topic``; ``validator(origin, data)`` runs on the libp2p thread, keep it cheap."""
        self._settings.topics[topic] = (validator, handler)

    async def start(self) -> None:
        host = Libp2pHost(self._settings, self._bridge)
        if host.peer_id != self.peer_id:
            raise RuntimeError("libp2p derived a different peer ID from the node key")
        self._host = host
        await self._bridge.start(host.run)

    async def stop(self) -> None:
        await self._bridge.stop()

    def _require(self) -> Libp2pHost:
        if self._host is None or not self._bridge.running:
            from node.errors import NetworkError

            raise NetworkError("the libp2p host is not running")
        return self._host

    async def addrs(self) -> list[str]:
        host = self._require()
        return await self._bridge.call(_sync, host.addrs)

    async def peers(self) -> list[str]:
        host = self._require()
        return await self._bridge.call(_sync, host.connected_peers)

    async def traversal(self) -> dict[str, Any]:
        """Reachability (AutoNAT), relayed addresses, relay service, and for each connected peer
        whether the connection is ``direct`` or ``relayed``."""
        host = self._require()
        return await self._bridge.call(_sync, lambda: _traversal_summary(host))

    async def connect(self, address: str) -> str:
        return await self._bridge.call(self._require().connect, address)

    async def publish(self, topic: str, data: bytes) -> None:
        await self._bridge.call(self._require().publish, topic, data)

    async def request(self, peer_id: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]:
        addrs = tuple(self._addresses(peer_id)) if self._addresses is not None else ()
        return await self._bridge.call(self._require().request, peer_id, protocol, payload, timeout, addrs)

    async def provide(self, key: str) -> bool:
        return await self._bridge.call(self._require().provide, key)

    async def find_providers(self, key: str, timeout: float = 5.0) -> list[str]:
        return await self._bridge.call(self._require().find_providers, key, timeout)

    async def ping(self, peer_id: str) -> float:
        return await self._bridge.call(self._require().ping, peer_id)

    def inbound_counters(self) -> InboundCounters:
        """What the inbound gate has refused, evicted and timed out (plain ints, safe to read)."""
        host = self._host
        return host.inbound.counters if host else InboundCounters()

    def trimmed(self) -> int:
        """Connections the connection manager closed, in all (a plain int, safe to read)."""
        host = self._host
        return host.connmgr.trimmed if host else 0

    def traffic(self) -> tuple[int, int]:
        """(bytes in, bytes out) over /mycel request streams (plain ints, safe to read)."""
        host = self._host
        return (host.bytes_in, host.bytes_out) if host else (0, 0)


async def _sync(fn: Any) -> Any:
    return fn()


def _traversal_summary(host: Libp2pHost) -> dict[str, Any]:
    traversal = host.traversal
    return {
        "reachability": traversal.reachability(),
        "relayed_addrs": traversal.circuit_addrs(),
        "relay": traversal.relay_summary(),
        "connections": traversal.kinds(),
        "hole_punches": traversal.hole_punches(),
    }
