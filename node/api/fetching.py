"""Fetches from peers that HTTP clients cause: bounded in number, in bytes, and shared.

A GET of content this node does not hold makes it fetch from peers and keep the blocks (unpinned,
so GC can take them). Without bounds one client could make the node download without limit, or
run a hundred fetches at once. So: at most ``api.max_remote_fetches`` fetches run at a time, a few
more wait, and past that a request is refused with 503; one GET may fetch at most
``api.max_fetch_bytes`` (counted on the bytes received, not on what a provider claims); and
concurrent GETs of the same root share one fetch instead of each fetching it again.
Who may cause a fetch at all is decided before any of this, in node/api/guards.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.api.errors import ApiError
from node.exchange import FetchTooLarge
from storage.cid import CID

if TYPE_CHECKING:
    from node.exchange import BlockExchange
    from node.service import NodeService

QUEUED_PER_SLOT = 4  # requests that may wait for a fetch slot, per slot


class RemoteFetches:
    """The node's budget for client-caused fetches (one per API app)."""

    def __init__(self, service: NodeService) -> None:
        self._service = service  # read on first use: building the app needs no configured node
        self.running = 0  # fetches holding a slot now
        self._slot: asyncio.Semaphore | None = None
        self._admitted = 0
        self._shared: dict[CID, asyncio.Task[None]] = {}

    @property
    def exchange(self) -> BlockExchange:
        return self._service.exchange

    @property
    def slots(self) -> int:
        return int(self._service.config.get("api", "max_remote_fetches"))

    @property
    def max_bytes(self) -> int:
        return int(self._service.config.get("api", "max_fetch_bytes"))

    async def for_read(self, root: CID) -> None:
        """Make ``root`` local for a GET, within the byte bound; shared with concurrent GETs of it."""
        task = self._shared.get(root)
        if task is None:
            task = asyncio.ensure_future(self._bounded(self._fetch_for_read(root)))
            self._shared[root] = task
            task.add_done_callback(lambda done: self._forget(root, done))
        try:
            await asyncio.shield(task)  # one client going away does not cancel the others' fetch
        except FetchTooLarge as exc:
            raise ApiError(
                403,
                "fetch_too_large",
                f"{exc}; the operator can raise api.max_fetch_bytes, or pin it first (POST /v1/pins/{root}, token)",
            ) from None

    async def for_pin(self, root: CID, name: str) -> None:
        """Fetch and pin ``root`` for POST /v1/pins (a token-holder's explicit ask: no byte bound)."""
        await self._bounded(self.exchange.fetch_and_pin(root, None, name))

    async def _fetch_for_read(self, root: CID) -> None:
        await self.exchange.fetch(root, max_bytes=self.max_bytes)

    def _forget(self, root: CID, done: asyncio.Task[None]) -> None:
        self._shared.pop(root, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every client may have gone away before it ended

    async def _bounded(self, work: Coroutine[Any, Any, object]) -> None:
        if self._admitted >= self.slots * (1 + QUEUED_PER_SLOT):
            work.close()  # never awaited
            raise ApiError(
                503,
                "fetch_busy",
                f"this node is already fetching from peers for {self._admitted} requests; retry in a few seconds",
            )
        if self._slot is None:
            self._slot = asyncio.Semaphore(self.slots)
        self._admitted += 1
        try:
            async with self._slot:
                self.running += 1
                try:
                    await work
                finally:
                    self.running -= 1
        finally:
            self._admitted -= 1


FETCHES_KEY: web.AppKey[RemoteFetches] = web.AppKey("remote_fetches", RemoteFetches)
