"""The connection manager: low and high watermarks instead of a full mesh.

A node that bootstraps from many peers, or that many peers dial, would otherwise keep a
connection (with its Yamux session, a GossipSub stream and DHT state) to every one of
them, so idle cost grows with the network. Past ``high`` connections this closes the
least recently used ones down to ``low``; a connection younger than ``grace``, or one
with a request of ours in flight, is kept. py-libp2p's own pruner never closes a
connection that has an open stream, and GossipSub keeps one open on every connection, so
it would never prune: this one decides by our own use of each connection instead.

Announcements still reach every node (GossipSub forwards them over the remaining mesh)
and a job can still go to any node: a request to a peer with no connection dials it on
demand at the addresses it announced (:meth:`node.p2p.host.Libp2pHost.request`).

It runs in the trio thread, called from the host's connection loop (no timer of its own).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    """``[p2p] connections_low``, ``connections_high``, ``connection_grace_seconds``."""

    low: int = 16
    high: int = 32
    grace: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high or self.grace < 0:
            raise ValueError(f"connection limits need 1 <= low <= high and grace >= 0, got {self}")


class ConnectionManager:
    def __init__(self, limits: ConnectionLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._seen: dict[str, float] = {}  # connected peer -> when it was first seen connected
        self._used: dict[str, float] = {}  # peer -> when a request to or from it last ended
        self._in_flight: Counter[str] = Counter()
        self.trimmed = 0  # connections closed, in all (a plain int, safe to read)

    def begin(self, peer: str) -> None:
        self._in_flight[peer] += 1

    def end(self, peer: str) -> None:
        self._in_flight[peer] -= 1
        if self._in_flight[peer] <= 0:
            del self._in_flight[peer]
        self._used[peer] = self._clock()

    def touch(self, peer: str) -> None:
        """A request from ``peer`` was served: its connection is in use."""
        self._used[peer] = self._clock()

    def below_low(self, connected: int) -> bool:
        """Whether the node should dial (its bootstrap peers) for more connections."""
        return connected < self.limits.low

    def to_close(self, connected: list[str]) -> list[str]:
        """The peers whose connections to close now: none up to ``high``, else the least
        recently used beyond ``grace`` and with nothing in flight, down to ``low``."""
        now = self._clock()
        for peer in connected:
            self._seen.setdefault(peer, now)
        current = set(connected)
        for gone in set(self._seen) - current:
            del self._seen[gone]
            self._used.pop(gone, None)
        if len(connected) <= self.limits.high:
            return []
        idle = [
            peer for peer in connected if now - self._seen[peer] >= self.limits.grace and peer not in self._in_flight
        ]
        idle.sort(key=lambda peer: (self._used.get(peer, self._seen[peer]), peer))
        return idle[: len(connected) - self.limits.low]
