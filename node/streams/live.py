"""Live replication: a stream's holder tells the replicas that watch it when its head moves.

Why: without it a replica learns of new entries only from the source's announcement (sent at
most every 2 s for head moves) or its own poll (POLL_SECONDS), so a trigger on a replica, or a
pipeline stage reading another node's output stream, lagged by about a second. With it the
lag is one notice and one pull (a few ms on a LAN); the poll stays as the fallback for a lost
notice, a holder that restarted (it forgets its watches) or one from before this.

Holder side (:class:`Watchers`):

* a watch exists only because a peer asked for it (``watch``) for a stream this node holds
  (origin or replica); at most MAX_WATCHES_PER_PEER per peer and MAX_WATCHERS in all (past them
  the answer is ``ttl`` 0); each lapses WATCH_TTL after the peer's last watch or pull of it;
* a watch is *armed* when made and each time the peer pulls that stream (a ``since``); a head
  move notices the armed watches only and disarms them. A peer thus gets at most one notice per
  request it sent itself, within its serving budget, so it cannot make the holder do more work
  than its own pulls cost; at 1,000 entries/s the notices coalesce to one per pull round trip;
* notices to one peer go one request at a time (heads that move meanwhile go together in the
  next), to at most MAX_SENDING peers at once, each within NOTICE_TIMEOUT; a send that fails
  is dropped (the poll recovers).

Replica side (:class:`LiveReplica`): it watches each stream it replicates at its source at
subscribe and again every WATCH_RENEW from the poll loop. A notice is a hint: it counts only
for a stream this node replicates from that very peer and only with a seq past the head held;
then this node pulls, one pull at a time per stream (a notice during a pull makes one more
after it), and verifies what it pulls as ever. Anything else in a notice is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from node.errors import NetworkError
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from node.streams.model import StreamRefused
from node.streams.protocol import (
    MAX_NOTICE_HEADS,
    PROTOCOL,
    Heads,
    StreamProtocolError,
    Watch,
    Watching,
    parse_watching,
)

log = logging.getLogger("mycelnet.streams")

WATCH_TTL = 30.0  # a holder keeps a watch this long after the peer's last watch or pull
WATCH_RENEW = 10.0  # a replica renews its watches this often (a restarted holder forgot them)
OLD_HOLDER_RETRY = 300.0  # a holder that answered a watch with nothing is asked again after this
MAX_WATCHES_PER_PEER = MAX_NOTICE_HEADS  # so one notice can always name every stream a peer watches
MAX_WATCHERS = 1024
MAX_SENDING = 16  # peers being sent a notice at once
# an honest peer takes a notice in milliseconds; one that stalls holds a sending slot this long,
# so stalled peers can at worst delay the others' notices to about the poll's cadence
NOTICE_TIMEOUT = 2.0
WATCH_TIMEOUT = 5.0


@dataclass
class _Watch:
    expires: float
    armed: bool = True


class Watchers:
    """The holder's side: who watches which stream here, and the notices to them."""

    def __init__(self, network: P2PNetwork, metrics: Metrics, held: Callable[[str], bool]) -> None:
        self._network = network
        self._metrics = metrics
        self._held = held  # whether this node holds a stream (from memory)
        self._by_stream: dict[str, dict[str, _Watch]] = {}
        self._per_peer: dict[str, int] = {}
        self._count = 0
        self._pending: dict[str, dict[str, int]] = {}  # peer -> stream -> head seq to notice
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._sending = asyncio.Semaphore(MAX_SENDING)

    def watch(self, peer: str, stream: str) -> Watching:
        """Register (or renew) ``peer``'s watch of ``stream``, armed; ttl 0 when refused."""
        if not self._held(stream):
            self._metrics.inc("stream_watches_refused_total", reason="not_held")
            return Watching(0)
        now = time.monotonic()
        held = self._by_stream.get(stream, {}).get(peer)
        if held is None:
            if not self._room(peer):
                self._expire(now)
                if not self._room(peer):
                    self._metrics.inc("stream_watches_refused_total", reason="full")
                    return Watching(0)
            held = _Watch(now)
            self._by_stream.setdefault(stream, {})[peer] = held
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
            self._count += 1
        held.expires, held.armed = now + WATCH_TTL, True
        return Watching(int(WATCH_TTL))

    def pulled(self, peer: str, stream: str) -> None:
        """``peer`` asks for entries of ``stream``: its watch (if any) is armed and kept alive."""
        held = self._by_stream.get(stream, {}).get(peer)
        if held is not None and held.expires > time.monotonic():
            held.expires, held.armed = time.monotonic() + WATCH_TTL, True

    def moved(self, stream: str, seq: int) -> None:
        """``stream``'s head here is now ``seq``: notice each armed watch (on the event loop, no I/O)."""
        peers = self._by_stream.get(stream)
        if not peers:
            return
        now = time.monotonic()
        for peer, held in list(peers.items()):
            if held.expires <= now:
                self._drop(stream, peer)
            elif held.armed:
                held.armed = False
                self._pending.setdefault(peer, {})[stream] = seq
                if peer not in self._senders:
                    self._senders[peer] = asyncio.create_task(self._send(peer))

    def watching(self, stream: str) -> list[str]:
        """The peers whose watch of ``stream`` has not lapsed."""
        now = time.monotonic()
        return [peer for peer, held in self._by_stream.get(stream, {}).items() if held.expires > now]

    async def stop(self) -> None:
        for task in list(self._senders.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _room(self, peer: str) -> bool:
        return self._per_peer.get(peer, 0) < MAX_WATCHES_PER_PEER and self._count < MAX_WATCHERS

    def _expire(self, now: float) -> None:
        for stream, peers in list(self._by_stream.items()):
            for peer, held in list(peers.items()):
                if held.expires <= now:
                    self._drop(stream, peer)

    def _drop(self, stream: str, peer: str) -> None:
        peers = self._by_stream[stream]
        del peers[peer]
        if not peers:
            del self._by_stream[stream]
        self._count -= 1
        self._per_peer[peer] -= 1
        if not self._per_peer[peer]:
            del self._per_peer[peer]

    async def _send(self, peer: str) -> None:
        try:
            while heads := self._pending.pop(peer, None):
                if len(heads) > MAX_NOTICE_HEADS:  # watches that lapsed and came back meanwhile
                    items = list(heads.items())
                    heads, self._pending[peer] = dict(items[:MAX_NOTICE_HEADS]), dict(items[MAX_NOTICE_HEADS:])
                async with self._sending:
                    try:
                        await self._network.request(peer, PROTOCOL, Heads(heads).encode(), timeout=NOTICE_TIMEOUT)
                        self._metrics.inc("stream_notices_sent_total")
                    except NetworkError as exc:  # the peer's poll is the fallback
                        self._metrics.inc("stream_notices_failed_total")
                        log.debug("head notice to %s: %s", peer, exc)
        finally:
            self._senders.pop(peer, None)


class LiveReplica:
    """The replica's side: watching its sources, and pulling on their notices."""

    def __init__(
        self,
        network: P2PNetwork,
        metrics: Metrics,
        source_of: Callable[[str], str | None],
        held_seq: Callable[[str], int],
        sync: Callable[[str, str], Awaitable[int]],
    ) -> None:
        self._network = network
        self._metrics = metrics
        self._source_of = source_of  # the peer this node replicates a stream from (None: not a replica)
        self._held_seq = held_seq  # the head this node holds of a replicated stream (0: none)
        self._sync = sync
        self._next_watch: dict[str, tuple[str, float, bool]] = {}  # stream -> (source, when to ask again, watched)
        self._pulling: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    async def watch(self, stream: str, source: str) -> bool:
        """Ask ``source`` for notices of ``stream`` unless asked recently; True: it watches."""
        asked = self._next_watch.get(stream)
        if asked is not None and asked[0] == source and asked[1] > time.monotonic():
            return asked[2]
        retry = WATCH_RENEW
        accepted = False
        try:
            frames = await self._network.request(source, PROTOCOL, Watch(stream).encode(), timeout=WATCH_TIMEOUT)
            answer = parse_watching(frames)
            if answer is None:  # a holder from before watches: it answers what it cannot parse with nothing
                retry = OLD_HOLDER_RETRY
            elif answer.ttl == 0:
                log.info("replicating %s: %s refused to watch it for this node (the poll goes on)", stream, source)
            else:
                retry, accepted = min(WATCH_RENEW, answer.ttl / 3), True
        except (NetworkError, StreamProtocolError) as exc:
            log.info("replicating %s: watching it at %s failed: %s", stream, source, exc)
        self._next_watch[stream] = (source, time.monotonic() + retry, accepted)
        return accepted

    def noticed(self, peer: str, heads: Heads) -> None:
        """A heads notice from ``peer``: pull each stream this node replicates from it and lags on."""
        for stream, seq in heads.heads.items():
            if self._source_of(stream) != peer or seq <= self._held_seq(stream):
                self._metrics.inc("stream_notices_ignored_total")
                continue
            self._metrics.inc("stream_notices_taken_total")
            if stream in self._pulling:
                self._again.add(stream)
            else:
                self._pulling[stream] = asyncio.create_task(self._pull(stream, peer))

    async def stop(self) -> None:
        for task in list(self._pulling.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pull(self, stream: str, source: str) -> None:
        try:
            while True:
                self._again.discard(stream)
                try:
                    await self._sync(stream, source)
                except (NetworkError, StreamRefused) as exc:
                    log.info("replicating %s from %s on its notice: %s", stream, source, exc)
                    return
                except Exception as exc:  # e.g. the store failing: the poll tries again
                    log.warning("replicating %s from %s on its notice failed: %s: %s",
                                stream, source, type(exc).__name__, exc)  # fmt: skip
                    return
                if stream not in self._again:
                    return
        finally:
            self._pulling.pop(stream, None)
            self._again.discard(stream)
