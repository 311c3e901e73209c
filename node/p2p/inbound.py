"""Admission of inbound libp2p connections until their handshake is done.

py-libp2p 0.8.1 gives every inbound TCP connection a slot of one shared limiter
(``max_connections - min_connections``, 250) from accept until the swarm stops: a
connection that never speaks holds its slot through the whole upgrade, and an
established one keeps its slot even after it has closed. About 300 idle sockets, or a
few hundred peers over a node's life, then lock every new peer out.

This gate replaces the swarm's inbound handler (see :meth:`InboundGate.install`):

- a connection must finish multistream, Noise and Yamux within ``handshake_timeout``
  or it is closed;
- at most ``max_pending_per_ip`` connections from one IP address may be handshaking at
  once (the newcomer past that is closed at once), and at most ``max_pending`` in all:
  past that the *oldest* pending connection is dropped for the newcomer, so a flood of
  silent sockets can delay an honest peer by at most its own handshake time, not lock it out;
- once upgraded, the handler lives as long as the connection (trio closes the socket
  when it returns) and then frees everything; established connections are bounded
  by libp2p's own ``max_connections``.

It runs in the trio thread and waits with anyio, like :mod:`node.p2p.host`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
from libp2p.network.connection.raw_connection import RawConnection

log = logging.getLogger("mycelnet.p2p")


@dataclass(frozen=True)
class InboundLimits:
    """Bounds on inbound connections that have not finished their handshake."""

    handshake_timeout: float = 10.0
    max_pending: int = 64
    max_pending_per_ip: int = 8

    def __post_init__(self) -> None:
        if self.handshake_timeout <= 0 or self.max_pending < 1 or self.max_pending_per_ip < 1:
            raise ValueError(f"inbound limits must be positive, got {self}")


@dataclass
class InboundCounters:
    """What the gate has done, as plain ints (read from any thread)."""

    pending: int = 0
    refused_per_ip: int = 0
    evicted: int = 0
    timed_out: int = 0
    failed: int = 0
    upgraded: int = 0
    closed: int = 0  # upgraded connections that have since closed (their handler returned)


@dataclass(eq=False)
class _Pending:
    ip: str
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    evicted: bool = False


class InboundGate:
    """Admits, times and evicts inbound connections still handshaking (one per swarm)."""

    def __init__(self, swarm: Any, limits: InboundLimits) -> None:
        self._swarm = swarm
        self.limits = limits
        self.counters = InboundCounters()
        self._pending: dict[_Pending, None] = {}  # insertion order: the oldest first
        self._per_ip: Counter[str] = Counter()

    def install(self) -> None:
        """Route the swarm's inbound connections through :meth:`handle` (before it listens).

        The swarm's listeners look ``_handle_inbound_connection`` up on the swarm for each
        connection, so an attribute on the instance takes the place of the method.
        """
        self._swarm._handle_inbound_connection = self.handle

    async def handle(self, read_write_closer: Any, maddr: Any) -> None:
        """One inbound connection, from accept to close."""
        entry = self._admit(_remote_ip(read_write_closer))
        if entry is None:
            await _close(read_write_closer)
            return
        raw_conn = RawConnection(read_write_closer, False)
        muxed: Any = None
        try:
            entry.scope.deadline = anyio.current_time() + self.limits.handshake_timeout
            with entry.scope:
                muxed = await self._upgrade(raw_conn, read_write_closer, maddr)
        except Exception as exc:  # any failure of a hostile handshake ends the same way
            self.counters.failed += 1
            log.debug("inbound handshake from %s failed: %s", entry.ip, exc)
        finally:
            self._release(entry)
        if muxed is None:
            if entry.scope.cancelled_caught:
                if entry.evicted:
                    self.counters.evicted += 1
                else:
                    self.counters.timed_out += 1
                log.debug("inbound connection from %s closed before its handshake finished", entry.ip)
            await _close(raw_conn)
            return
        self.counters.upgraded += 1
        closed = getattr(muxed, "event_closed", None)
        try:
            if closed is not None:
                await closed.wait()  # trio closes the socket when this handler returns
            else:  # a muxer without the event: keep py-libp2p's own behaviour
                await self._swarm.manager.wait_finished()
        finally:
            self.counters.closed += 1

    async def _upgrade(self, raw_conn: Any, read_write_closer: Any, maddr: Any) -> Any:
        swarm = self._swarm
        remote_maddr = swarm._build_remote_multiaddr(read_write_closer)
        if remote_maddr is not None and not await swarm.connection_gate.is_allowed(remote_maddr):
            log.debug("inbound connection from %s denied by the connection gate", remote_maddr)
            return None
        return await swarm.upgrade_inbound_raw_conn(raw_conn, maddr)

    def _admit(self, ip: str) -> _Pending | None:
        if self._per_ip[ip] >= self.limits.max_pending_per_ip:
            self.counters.refused_per_ip += 1
            log.debug("refused an inbound connection from %s: %d already handshaking", ip, self._per_ip[ip])
            return None
        if len(self._pending) >= self.limits.max_pending:
            oldest = next(iter(self._pending))
            oldest.evicted = True
            oldest.scope.cancel()
            self._release(oldest)
        entry = _Pending(ip)
        self._pending[entry] = None
        self._per_ip[ip] += 1
        self.counters.pending = len(self._pending)
        return entry

    def _release(self, entry: _Pending) -> None:
        """Count ``entry`` out (once: an evicted entry is released by the newcomer and by itself)."""
        if entry in self._pending:
            del self._pending[entry]
            self._per_ip[entry.ip] -= 1
            if self._per_ip[entry.ip] <= 0:
                del self._per_ip[entry.ip]
        self.counters.pending = len(self._pending)


def _remote_ip(read_write_closer: Any) -> str:
    with contextlib.suppress(Exception):
        address = read_write_closer.get_remote_address()
        if address is not None:
            return str(address[0])
    return ""


async def _close(closer: Any) -> None:
    """Close a connection even from a cancelled scope (a timed-out or evicted handshake)."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(1), contextlib.suppress(Exception):
        await closer.close()
