"""The libp2p host, as it runs inside the trio thread.

Only :class:`node.p2p.network.P2PNetwork` talks to this class, always through the
bridge. Settings here are the ones FIELD-NOTES.md found necessary: Noise only (the
default host also offers plaintext), Yamux, one connection per peer (otherwise every
dial waits ~250 ms), GossipSub with an explicit heartbeat and without the
per-IP eclipse protection that would keep a loopback cluster from forming a mesh.
Inbound connections go through :class:`node.p2p.inbound.InboundGate`: a handshake
timeout and bounds on pending handshakes, so silent sockets cannot lock peers out.

Incoming requests and gossip are handed to asyncio handlers through the bridge; this
module waits with anyio, so it runs on trio without importing it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import multiaddr
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.config import ConnectionConfig
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.protocol_muxer.exceptions import MultiselectClientError
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service

from node.errors import NetworkError, ProtocolNotSupported
from node.p2p.bridge import TrioBridge
from node.p2p.connmgr import ConnectionLimits, ConnectionManager
from node.p2p.framing import Frame, FrameReader, coalesced, frame, frame_size
from node.p2p.inbound import InboundGate, InboundLimits
from node.p2p.natconfig import TraversalSettings
from node.p2p.pubsub_repair import repair as repair_pubsub
from node.p2p.sender_records import install as install_sender_records
from node.p2p.sessions import SessionPool, SessionProtocol
from node.p2p.sessions import serve as serve_session
from node.p2p.traversal import CIRCUIT, Traversal
from node.p2p.tuning import apply as apply_tuning
from node.p2p.tuning import open_receive_window
from node.p2p.wakeups import ConnectionEvents

log = logging.getLogger("mycelnet.p2p")
TUNING = apply_tuning()  # one Noise message per Yamux frame, no per-frame debug strings (see tuning.py)
SENDER_RECORDS = install_sender_records()  # a peer's signed peer record checked once, not per RPC

GOSSIP_PROTOCOLS = [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")]
# The gossip mesh: each message reaches a node about once per mesh peer, so its idle cost (every
# announcement copy read, decrypted, parsed and forwarded) is proportional to the mesh size, not
# to the peer count only while the mesh is kept small. With a high bound of 12 a cluster of up
# to 13 nodes was a full mesh (every node got every announcement from every peer).
GOSSIP_DEGREE = 4
GOSSIP_DEGREE_LOW = 3
GOSSIP_DEGREE_HIGH = 6
REQUEST_TIMEOUT = 30.0
BOOTSTRAP_RETRY = 2.0
PUBSUB_REPAIR_INTERVAL = 1.0
PUBSUB_REPAIR_ROUNDS = 5  # repairs after each connection change (pubsub handles the new one in its own task)
CLOSE_TIMEOUT = 2.0  # for closing every connection on stop
WRITE_SIZE = 1 << 20
MAX_SESSION_ANSWER = 1 << 20  # one answer on a session stream, all its frames together
# credit a requester grants on each request stream it opens: a /mycel/blocks reply (16 blocks
# of 256 KiB) arrives without waiting for window updates; requests in flight bound the total
REQUEST_WINDOW = (4 << 20) + (64 << 10)


@contextlib.contextmanager
def _as_network_errors(peer_id: str, protocol: str, timeout: float) -> Iterator[None]:
    """Bound a request to ``peer_id`` by ``timeout`` and turn what it raises into the errors
    callers handle: NetworkError, or ProtocolNotSupported when the peer refused ``protocol``."""
    try:
        with anyio.fail_after(timeout):
            yield
    except TimeoutError:
        raise NetworkError(f"peer {peer_id} did not answer {protocol} within {timeout:.0f} s") from None
    except NetworkError:
        raise
    except Exception as exc:
        if _refused_protocol(exc):
            raise ProtocolNotSupported(f"peer {peer_id} does not speak {protocol}") from None
        raise NetworkError(f"{protocol} request to {peer_id} failed: {type(exc).__name__}: {exc}") from None


class StreamCounts:
    """Inbound streams of one kind open now, per peer and in all: what their bounds are checked
    against (one trio thread touches it, so no lock)."""

    def __init__(self) -> None:
        self._per_peer: dict[str, int] = {}
        self.total = 0

    def of(self, peer: str) -> int:
        return self._per_peer.get(peer, 0)

    def admit(self, peer: str, per_peer: int, in_all: int) -> bool:
        """Count one more stream of ``peer`` unless it or all of them are at their bound."""
        if self.of(peer) >= per_peer or self.total >= in_all:
            return False
        self._per_peer[peer] = self.of(peer) + 1
        self.total += 1
        return True

    def release(self, peer: str) -> None:
        self.total -= 1
        self._per_peer[peer] -= 1
        if not self._per_peer[peer]:
            del self._per_peer[peer]


RequestHandler = Callable[[str, bytes], Coroutine[Any, Any, Sequence[Frame]]]  # reply frames, whole or in parts
GossipHandler = Callable[[str, bytes], Coroutine[Any, Any, None]]
GossipValidator = Callable[[str, bytes], bool]
MessageHandler = Callable[[str, str, bytes], Coroutine[Any, Any, None]]  # (peer, protocol, message)


@dataclass(frozen=True)
class MessageProtocol:
    """A one-way message protocol (Bitswap): a sender opens a stream and writes length-prefixed
    messages; answers go back on a stream the receiver opens. Bounds per the protocol's needs."""

    handler: MessageHandler
    max_message: int
    max_streams_per_peer: int = 4  # Helia sends one message stream at a time per peer, boxo keeps one open
    max_streams: int = 64  # over all peers: with max_message, bounds the bytes being read at once
    idle_timeout: float = 300.0  # boxo keeps one sending stream per peer open between messages


@dataclass
class HostSettings:
    seed: bytes
    listen: Sequence[str]
    bootstrap: Sequence[str] = ()
    mdns: bool = False
    request_handlers: dict[str, RequestHandler] = field(default_factory=dict)
    topics: dict[str, tuple[GossipValidator, GossipHandler]] = field(default_factory=dict)
    message_protocols: dict[str, MessageProtocol] = field(default_factory=dict)
    session_protocols: dict[str, SessionProtocol] = field(default_factory=dict)
    inbound: InboundLimits = field(default_factory=InboundLimits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    traversal: TraversalSettings = field(default_factory=TraversalSettings)
    peers_changed: Callable[[], None] | None = None  # called on the asyncio loop when a connection opens or closes


class Libp2pHost:
    def __init__(self, settings: HostSettings, bridge: TrioBridge) -> None:
        self.settings = settings
        self.bridge = bridge
        key_pair = create_new_key_pair(settings.seed)
        noise = NoiseTransport(
            libp2p_keypair=key_pair, noise_privkey=create_x25519_key_pair().private_key, early_data=None
        )
        self.host = new_host(
            key_pair=key_pair,
            sec_opt={NOISE_PROTOCOL_ID: noise},
            muxer_preference="YAMUX",
            connection_config=ConnectionConfig(
                max_connections_per_peer=1, inbound_upgrade_timeout=settings.inbound.handshake_timeout
            ),
            enable_mDNS=settings.mdns,
        )
        self.connmgr = ConnectionManager(settings.connections)
        self.inbound = InboundGate(self.host.get_network(), settings.inbound)
        self.inbound.install()
        self.connection_events = ConnectionEvents(self._connections_changed)
        self.host.get_network().register_notifee(self.connection_events)
        self.gossipsub = GossipSub(
            protocols=GOSSIP_PROTOCOLS,
            degree=GOSSIP_DEGREE,
            degree_low=GOSSIP_DEGREE_LOW,
            degree_high=GOSSIP_DEGREE_HIGH,
            heartbeat_interval=1,
            eclipse_protection_enabled=False,
            spam_protection_enabled=True,
            max_messages_per_topic_per_second=50.0,
        )
        self.pubsub = Pubsub(self.host, self.gossipsub)
        # Kubo-compatible wire protocol (/ipfs/kad/1.0.0): py-libp2p hard-codes it (FIELD-NOTES.md)
        self.dht = KadDHT(self.host, DHTMode.SERVER)
        self.traversal = Traversal(self.host, settings.traversal)  # AutoNAT, relay, DCUtR
        self.peer_id = self.host.get_id().to_base58()
        self.bytes_in = 0
        self.bytes_out = 0
        self._message_streams = StreamCounts()  # inbound message streams open, per peer and in all
        self._session_streams = StreamCounts()  # inbound session streams open, per peer and in all
        self._group: anyio.abc.TaskGroup | None = None  # where session readers run, once started
        self.sessions = SessionPool(self._open_session_stream, self._spawn_session, MAX_SESSION_ANSWER)
        self.streams_opened = 0  # outbound request and session streams opened, in all (a plain int)

    # -- lifecycle ---------------------------------------------------------------
    async def run(self, ready: Callable[[], None]) -> None:
        addrs = [multiaddr.Multiaddr(a) for a in self.settings.listen]
        async with (
            self.host.run(listen_addrs=addrs),
            background_trio_service(self.pubsub),
            background_trio_service(self.gossipsub),
            background_trio_service(self.dht),
            self.traversal.running(),
        ):
            for protocol, request_handler in self.settings.request_handlers.items():
                self.host.set_stream_handler(TProtocol(protocol), self._make_stream_handler(request_handler))
            for protocol, spec in self.settings.message_protocols.items():
                self.host.set_stream_handler(TProtocol(protocol), self._make_message_handler(protocol, spec))
            for protocol, session in self.settings.session_protocols.items():
                self.host.set_stream_handler(TProtocol(protocol), self._make_session_handler(protocol, session))
            try:
                async with anyio.create_task_group() as group:
                    self._group = group
                    for topic, (validator, gossip_handler) in self.settings.topics.items():
                        self.pubsub.set_topic_validator(topic, self._make_validator(validator), False)
                        subscription = await self.pubsub.subscribe(topic)
                        group.start_soon(self._pump_topic, subscription, gossip_handler)
                    group.start_soon(self._bootstrap_loop)
                    group.start_soon(self._pubsub_repair_loop)
                    group.start_soon(self.traversal.loop)
                    ready()
                    await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                    await self._close_connections()

    async def _close_connections(self) -> None:
        """Close every connection before the host goes away, so peers see it closed at once.

        Stopping cancels the host's tasks, and py-libp2p's own close then runs cancelled: its
        sockets were left open, so a peer kept the dead connection (and its pubsub stream) as
        live. A peer restarted at once then reconnected beside it, and the survivor never sent
        its subscriptions on the new connection: the restarted peer's gossip was lost (measured:
        none of 30 messages over 9 s arrived). Closed all at once: each close waits ~0.1 s.
        """
        network = self.host.get_network()
        async with anyio.create_task_group() as group:
            for connections in list(network.connections.values()):
                for connection in list(connections):
                    group.start_soon(_close_quietly, connection)

    def _connections_changed(self) -> None:
        if self.settings.peers_changed is not None:
            self.bridge.post_to_asyncio(self.settings.peers_changed)

    def addrs(self) -> list[str]:
        """Where this node listens, and behind NAT where a relay takes connections for it."""
        return [str(a) for a in self.host.get_addrs()] + self.traversal.circuit_addrs()

    def connected_peers(self) -> list[str]:
        return [peer.to_base58() for peer in self.host.get_connected_peers()]

    # -- operations (called through the bridge) -------------------------------------
    async def connect(self, address: str) -> str:
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(address))
        except Exception as exc:
            raise NetworkError(f"{address!r} is not a /p2p multiaddr: {exc}") from None
        self._forget_failed_dials(info.peer_id)  # a deliberate dial: the caller paces its retries
        with anyio.fail_after(10):
            await self.host.connect(info)
        return str(info.peer_id.to_base58())

    async def publish(self, topic: str, data: bytes) -> None:
        await self.pubsub.publish(topic, data)

    async def request(
        self, peer_id: str, protocol: str, payload: bytes, timeout: float = REQUEST_TIMEOUT, addrs: Sequence[str] = ()
    ) -> list[bytes]:
        """Open a stream, send one frame, and read frames until the peer closes it.

        With no connection to the peer, the stream dials it: at ``addrs`` (what it announced)
        as well as at any address the peerstore has (dial on demand)."""
        self.connmgr.begin(peer_id)
        try:
            return await self._request(peer_id, protocol, payload, timeout, addrs)
        finally:
            self.connmgr.end(peer_id)

    async def _open_stream(self, peer_id: str, protocol: str, addrs: Sequence[str]) -> Any:
        """A new stream to the peer, dialing it first (at ``addrs`` too) if it is not connected."""
        peer = ID.from_base58(peer_id)
        # a peer that announced a relayed address is behind NAT: its direct ones would
        # only time out, so go through the relay (DCUtR may then make it direct)
        unconnected = addrs and not self.host.get_network().get_connections(peer)
        if unconnected and not await self.traversal.dial(peer, list(addrs)):
            self._learn(peer, [a for a in addrs if CIRCUIT not in a])
        stream = await self.host.new_stream(peer, [TProtocol(protocol)])
        self.streams_opened += 1
        return stream

    async def _request(
        self, peer_id: str, protocol: str, payload: bytes, timeout: float, addrs: Sequence[str]
    ) -> list[bytes]:
        with _as_network_errors(peer_id, protocol, timeout):
            stream = await self._open_stream(peer_id, protocol, addrs)
            try:
                await open_receive_window(stream, REQUEST_WINDOW)
                await stream.write(frame(payload))
                self.bytes_out += len(payload)
                await stream.close_write()  # NetStream has it
                reader = FrameReader(_EOFAsEmpty(stream))
                frames = []
                while (item := await reader.read_frame()) is not None:
                    self.bytes_in += len(item)
                    frames.append(item)
                return frames
            finally:
                await stream.close()

    async def session_request(
        self, peer_id: str, protocol: str, payload: bytes, timeout: float = REQUEST_TIMEOUT, addrs: Sequence[str] = ()
    ) -> list[bytes]:
        """One request on the peer's session stream of ``protocol`` (opened at the first one,
        :mod:`node.p2p.sessions`); the same errors as :meth:`request`."""
        self.connmgr.begin(peer_id)
        try:
            with _as_network_errors(peer_id, protocol, timeout):
                frames = await self.sessions.request(peer_id, protocol, payload, addrs)
            self.bytes_out += len(payload)
            self.bytes_in += sum(len(item) for item in frames)
            return frames
        finally:
            self.connmgr.end(peer_id)

    async def _open_session_stream(self, peer_id: str, protocol: str, addrs: Sequence[str]) -> Any:
        return _EOFAsEmpty(await self._open_stream(peer_id, protocol, addrs))

    def _spawn_session(self, reader: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._group is None:
            raise NetworkError("the libp2p host is not running")
        self._group.start_soon(reader)

    async def send_messages(
        self, peer_id: str, protocols: Sequence[str], messages: Sequence[bytes], timeout: float = REQUEST_TIMEOUT
    ) -> str:
        """Open a new stream (the first of ``protocols`` the peer speaks), write ``messages``
        length-prefixed, close it; returns the protocol negotiated. Nothing is read back."""
        try:
            with anyio.fail_after(timeout):
                stream = await self.host.new_stream(ID.from_base58(peer_id), [TProtocol(p) for p in protocols])
                try:
                    for chunk in coalesced(messages, WRITE_SIZE):
                        await stream.write(chunk)
                    self.bytes_out += sum(len(item) for item in messages)
                    await stream.close()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await stream.reset()
                    raise
                return str(stream.get_protocol())
        except TimeoutError:
            raise NetworkError(f"peer {peer_id} did not take a {protocols[0]} message within {timeout:.0f} s") from None
        except Exception as exc:
            raise NetworkError(f"{protocols[0]} message to {peer_id} failed: {type(exc).__name__}: {exc}") from None

    def _learn(self, peer: ID, addrs: Sequence[str]) -> None:
        """Put a peer's announced addresses in the peerstore, so a dial can reach it."""
        known = []
        for address in addrs:
            with contextlib.suppress(Exception):  # an announced address this stack cannot parse
                known.append(multiaddr.Multiaddr(address))
        if known:
            self.host.get_peerstore().add_addrs(peer, known, 600)

    async def provide(self, key: str) -> bool:
        """Announce on the DHT that this node holds ``key`` (a CID string)."""
        await self._refresh_routing_table()
        with anyio.move_on_after(15):
            return bool(await self.dht.provide(key))
        return False

    async def find_providers(self, key: str, timeout: float = 5.0) -> list[str]:
        """Peer IDs the DHT lists as providers of ``key``; their addresses go to the peerstore."""
        await self._refresh_routing_table()
        found: list[str] = []
        with anyio.move_on_after(timeout):
            for info in await self.dht.find_providers(key):
                if info.addrs:
                    self.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 600)
                found.append(info.peer_id.to_base58())
        return found

    async def _refresh_routing_table(self) -> None:
        for peer in self.host.get_connected_peers():
            try:
                await self.dht.add_peer(peer)
            except Exception as exc:  # a peer that vanished mid-way
                log.debug("DHT add_peer %s: %s", peer, exc)

    async def ping(self, peer_id: str) -> float:
        start = anyio.current_time()
        await self.request(peer_id, "/mycel/ping/1.0.0", b"")
        return anyio.current_time() - start

    # -- internals ---------------------------------------------------------------
    def _make_stream_handler(self, handler: RequestHandler) -> Callable[[Any], Awaitable[None]]:
        async def on_stream(stream: Any) -> None:
            peer = stream.muxed_conn.peer_id.to_base58()
            self.connmgr.touch(peer)
            try:
                with anyio.fail_after(REQUEST_TIMEOUT):
                    request = await FrameReader(_EOFAsEmpty(stream)).read_frame()
                if request is None:
                    return
                self.bytes_in += len(request)
                frames = await self.bridge.to_asyncio(handler(peer, request))
                self.bytes_out += sum(frame_size(item) for item in frames)
                for chunk in coalesced(frames, WRITE_SIZE):  # py-libp2p streams are ~3x faster with 1 MiB writes
                    await stream.write(chunk)
                await stream.close()
            except Exception as exc:
                log.info("request from %s failed: %s", peer, exc)
                with contextlib.suppress(Exception):
                    await stream.reset()

        return on_stream

    def _make_message_handler(self, protocol: str, spec: MessageProtocol) -> Callable[[Any], Awaitable[None]]:
        """Read messages from one inbound stream until it ends; each goes to the asyncio handler in
        turn (awaited, so a peer that writes faster than it is served is slowed, not queued).
        A peer's open streams are counted over all message protocols together."""
        open_streams = self._message_streams

        async def on_stream(stream: Any) -> None:
            peer = stream.muxed_conn.peer_id.to_base58()
            if not open_streams.admit(peer, spec.max_streams_per_peer, spec.max_streams):
                log.info("%s: refused a stream from %s (%d open from it)", protocol, peer, open_streams.of(peer))
                with contextlib.suppress(Exception):
                    await stream.reset()
                return
            try:
                reader = FrameReader(_EOFAsEmpty(stream), spec.max_message)
                while True:
                    with anyio.fail_after(spec.idle_timeout):
                        message = await reader.read_frame()
                    if message is None:
                        break
                    self.bytes_in += len(message)
                    await self.bridge.to_asyncio(spec.handler(peer, protocol, message))
                await stream.close()
            except Exception as exc:
                log.info("%s stream from %s ended: %s", protocol, peer, exc)
                with contextlib.suppress(Exception):
                    await stream.reset()
            finally:
                open_streams.release(peer)

        return on_stream

    def _make_session_handler(self, protocol: str, spec: SessionProtocol) -> Callable[[Any], Awaitable[None]]:
        """Serve one inbound session stream (:mod:`node.p2p.sessions`) until the peer closes it;
        a peer's open session streams are bounded, and so are all of them together."""
        open_streams = self._session_streams

        async def on_stream(stream: Any) -> None:
            peer = stream.muxed_conn.peer_id.to_base58()
            self.connmgr.touch(peer)
            if not open_streams.admit(peer, spec.max_streams_per_peer, spec.max_streams):
                log.info("%s: refused a session from %s (%d open from it)", protocol, peer, open_streams.of(peer))
                with contextlib.suppress(Exception):
                    await stream.reset()
                return
            try:
                await serve_session(_Counted(self, stream), peer, spec, self.bridge.to_asyncio, MAX_SESSION_ANSWER)
                await stream.close()
            except Exception as exc:
                log.info("%s session from %s ended: %s", protocol, peer, exc)
                with contextlib.suppress(Exception):
                    await stream.reset()
            finally:
                open_streams.release(peer)

        return on_stream

    def _make_validator(self, validator: GossipValidator) -> Callable[[ID, Any], bool]:
        def validate(forwarder: ID, message: Any) -> bool:
            origin = ID(message.from_id).to_base58() if message.from_id else ""
            return validator(origin, bytes(message.data))

        return validate

    def _forget_failed_dials(self, peer: ID) -> None:
        """Let the next dial to ``peer`` really be tried.

        py-libp2p 0.8.1 refuses every dial to a peer whose addresses all failed once, for 60 s
        (the swarm's negative peer cache), and even a connection the peer opens to us does not
        lift that. A peer restarted at once was dialled while it was down, so its peers rejoined
        it a minute late and requests to it failed meanwhile. Lifted when we dial on purpose
        (bootstrap, ``connect``) and when a message the peer signed arrives: it is up again.
        """
        unblock: Callable[[ID], None] | None = getattr(self.host.get_network(), "unblock_peer", None)
        if unblock is not None:
            unblock(peer)

    async def _pump_topic(self, subscription: Any, handler: GossipHandler) -> None:
        while True:
            message = await subscription.get()
            origin = ID(message.from_id).to_base58() if message.from_id else ""
            if message.from_id:
                self._forget_failed_dials(ID(message.from_id))
            self.bridge.post_to_asyncio(_spawn, handler(origin, bytes(message.data)))

    async def _pubsub_repair_loop(self) -> None:
        """Replace pubsub streams left on closed connections by a peer that came back at once
        (:mod:`.pubsub_repair`); without it the peer's gossip did not reach us for a minute.

        A stale stream is only left by a connection closing or opening, so the repair runs for
        PUBSUB_REPAIR_ROUNDS seconds after each such change and sleeps in between (it looked
        once a second, for nothing, on an idle node)."""
        seen = -1
        while True:
            seen = await self.connection_events.wait(seen)
            for _ in range(PUBSUB_REPAIR_ROUNDS):
                await anyio.sleep(PUBSUB_REPAIR_INTERVAL)
                repair_pubsub(self.pubsub)

    async def _bootstrap_loop(self) -> None:
        """Dial bootstrap peers, re-dial any that drop (e.g. restarted) while the node has fewer
        connections than the low watermark, and trim them past the high one (:mod:`.connmgr`).

        The routing table gets the connected peers only when that set changed: the DHT keeps
        its table on its own schedule, and an idle, converged node does no DHT work here. With
        nothing left to do (every bootstrap peer connected or enough connections, none to trim)
        it sleeps until a connection opens or closes; else it looks again every BOOTSTRAP_RETRY,
        as it used to look always.
        """
        known: set[str] = set()
        while True:
            seen = self.connection_events.changes
            connected = set(self.connected_peers())
            for address in self.settings.bootstrap:
                if address.rsplit("/", 1)[-1] in connected or not self.connmgr.below_low(len(connected)):
                    continue
                try:
                    await self.connect(address)
                except Exception as exc:
                    log.debug("bootstrap %s not reachable yet: %s", address, exc)
                connected = set(self.connected_peers())
            for peer in self.connmgr.to_close(sorted(connected)):
                with contextlib.suppress(Exception):  # it may be closing already
                    await self.host.get_network().close_peer(ID.from_base58(peer))
                    self.connmgr.trimmed += 1
            connected = set(self.connected_peers())
            if connected != known:
                await self._refresh_routing_table()
                known = connected
            missing = [a for a in self.settings.bootstrap if a.rsplit("/", 1)[-1] not in connected]
            pending = (missing and self.connmgr.below_low(len(connected))) or len(connected) > self.connmgr.limits.high
            if pending:
                await anyio.sleep(BOOTSTRAP_RETRY)
            else:  # then a round BOOTSTRAP_RETRY later, as before: a burst of changes is one round, and
                # a connection just opened (a dial on demand, its first request not yet sent) is not
                # trimmed at once
                await self.connection_events.wait(seen)
                await anyio.sleep(BOOTSTRAP_RETRY)


async def _close_quietly(connection: Any) -> None:
    """Close a SwarmConn and, below it, its muxed connection and socket.

    py-libp2p 0.8.1 marks a SwarmConn closed before it closes its muxer; a close cancelled in
    between (as stopping does) leaves the socket open, and every later ``close()`` is a no-op."""
    with contextlib.suppress(Exception):  # it may be closing already
        await connection.close()
    muxed = getattr(connection, "muxed_conn", None)
    if muxed is not None and not muxed.is_closed:
        with contextlib.suppress(Exception):
            await muxed.close()


def _refused_protocol(exc: BaseException) -> bool:
    """Whether opening a stream failed because the peer answered "na" to every protocol offered.

    py-libp2p 0.8.1 reports that only as a StreamFailure caused by a MultiselectClientError whose
    text says so (the per-protocol ProtocolNotSupportedError is caught inside the library), so
    this is the one place that reads the library's message; the rest of the node gets a type.
    """
    cause = exc.__cause__
    return isinstance(cause, MultiselectClientError) and str(cause).startswith("protocols not supported")


class _EOFAsEmpty:
    """py-libp2p raises StreamEOF at end of stream; FrameReader expects b""."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def read(self, n: int | None = None) -> bytes:
        try:
            data: bytes = await self._stream.read(n)
        except StreamEOF:
            return b""
        return data

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)

    async def reset(self) -> None:
        await self._stream.reset()


class _Counted(_EOFAsEmpty):
    """An inbound session stream whose bytes count in the host's traffic totals."""

    def __init__(self, host: Libp2pHost, stream: Any) -> None:
        super().__init__(stream)
        self._host = host

    async def read(self, n: int | None = None) -> bytes:
        data = await super().read(n)
        self._host.bytes_in += len(data)
        return data

    async def write(self, data: bytes) -> None:
        await super().write(data)
        self._host.bytes_out += len(data)


def _spawn(coro: Awaitable[None]) -> None:
    import asyncio

    task = asyncio.ensure_future(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[Any] = set()
