"""Connection events, so the host's loops and the announcer wake on change instead of polling.

An idle, converged node has nothing to dial, trim, repair or announce until a connection opens
or closes: the loops that used to look every 0.5-2 s (the announcer's check of the connected
peers, the bootstrap/trim loop, the pubsub stream repair) now sleep until :class:`ConnectionEvents`
says the set of connections changed. It is a py-libp2p network notifee and runs in the trio
thread; ``on_change`` is called there too (the host posts it on to the asyncio loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from libp2p.abc import INotifee


class ConnectionEvents(INotifee):
    """Counts connection opens and closes and wakes whoever waits for the next one."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.changes = 0  # opens and closes seen, in all (a plain int)
        self._on_change = on_change
        self._event: anyio.Event | None = None

    def _changed(self) -> None:
        self.changes += 1
        if self._event is not None:
            self._event.set()
            self._event = None
        if self._on_change is not None:
            self._on_change()

    async def wait(self, seen: int, timeout: float | None = None) -> int:
        """Return once ``changes`` differs from ``seen`` (at once if it does already), or after
        ``timeout`` seconds; returns the count then. Call it from the trio thread."""
        if self.changes == seen:
            if self._event is None:
                self._event = anyio.Event()
            event = self._event
            with anyio.move_on_after(timeout if timeout is not None else float("inf")):
                await event.wait()
        return self.changes

    async def connected(self, network: Any, conn: Any) -> None:
        self._changed()

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._changed()

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None
