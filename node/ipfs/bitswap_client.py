"""Fetching blocks from a peer over Bitswap, every block checked against its CID.

A want goes out as a wantlist message (want-block or want-have, sendDontHave set); the
peer answers on a stream of its own, which :mod:`node.ipfs.bitswap` decodes and hands
here. A block counts only when hashing its bytes as its prefix says gives a CID this
node asked *that peer* for; anything else (unasked, from another peer, wrong bytes) is
dropped and counted, so a peer cannot push content into the store. A DONT_HAVE ends
the wait at once; silence ends it at the timeout, and the want is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from node.errors import NetworkError
from node.ipfs.bitswap_pb import BlockPresence, Message, Presence, WantEntry, WantType, encode
from node.metrics import Metrics
from storage.blockstore import VerifiedBlock
from storage.cid import CID

MAX_PENDING_PER_PEER = 1024  # our own wants outstanding at one peer
GET_TIMEOUT = 30.0
HAVE_TIMEOUT = 10.0

T = TypeVar("T")
Sender = Callable[[str, Sequence[str], Sequence[bytes]], Awaitable[str]]


class BitswapUnavailable(NetworkError):
    """The peer answered DONT_HAVE, or did not send the block within the timeout."""


class BitswapClient:
    def __init__(self, send: Sender, protocols: Sequence[str], metrics: Metrics) -> None:
        self._send = send
        self._protocols = list(protocols)
        self.metrics = metrics
        self._blocks: dict[str, dict[CID, asyncio.Future[VerifiedBlock]]] = {}
        self._haves: dict[str, dict[CID, asyncio.Future[bool]]] = {}
        self._waiters: dict[asyncio.Future[Any], int] = {}  # callers sharing one want's future

    # -- what the endpoint asks ---------------------------------------------------------
    def wanted_from(self, peer: str) -> frozenset[CID]:
        """The CIDs this node is waiting on from ``peer`` (blocks and haves): only these get hashed."""
        return frozenset(self._blocks.get(peer, {})) | frozenset(self._haves.get(peer, {}))

    def on_blocks(self, peer: str, blocks: Sequence[VerifiedBlock], unwanted: int) -> None:
        """Blocks from ``peer`` already hashed against CIDs we asked it for (see the endpoint)."""
        if unwanted:
            self.metrics.inc("bitswap_unwanted_blocks_total", unwanted)
        for block in blocks:
            waiting = self._blocks.get(peer, {}).get(block.cid)
            if waiting is not None and not waiting.done():
                waiting.set_result(block)
            have = self._haves.get(peer, {}).get(block.cid)  # a peer may answer want-have with the block
            if have is not None and not have.done():
                have.set_result(True)

    def on_presences(self, peer: str, presences: Sequence[BlockPresence]) -> None:
        for presence in presences:
            have = self._haves.get(peer, {}).get(presence.cid)
            if have is not None and not have.done():
                have.set_result(presence.type == Presence.HAVE)
            waiting = self._blocks.get(peer, {}).get(presence.cid)
            if presence.type == Presence.DONT_HAVE and waiting is not None and not waiting.done():
                waiting.set_exception(BitswapUnavailable(f"peer {peer} does not have {presence.cid}"))

    # -- what the node asks ---------------------------------------------------------------
    async def has(self, peer: str, cid: CID, timeout: float = HAVE_TIMEOUT) -> bool:
        """Whether ``peer`` says it has ``cid`` (want-have); False on DONT_HAVE, silence or error."""
        futures = self._register(self._haves, peer, [cid])
        try:
            async with asyncio.timeout(timeout):  # the send included: a dial that hangs is bounded too
                await self._want(peer, [cid], WantType.HAVE)
                return await asyncio.shield(futures[cid])
        except (NetworkError, TimeoutError):
            return False
        finally:
            self._release(self._haves, peer, futures)

    async def get_blocks(self, peer: str, cids: Sequence[CID], timeout: float = GET_TIMEOUT) -> list[VerifiedBlock]:
        """The blocks ``cids`` from ``peer``, verified; raises :class:`BitswapUnavailable` or NetworkError."""
        wanted = list(dict.fromkeys(cids))
        futures = self._register(self._blocks, peer, wanted)
        done = False
        try:
            await self._want(peer, wanted, WantType.BLOCK)
            try:
                blocks = await asyncio.wait_for(asyncio.gather(*(asyncio.shield(futures[c]) for c in wanted)), timeout)
            except TimeoutError:
                missing = sum(1 for c in wanted if not futures[c].done())
                raise BitswapUnavailable(
                    f"peer {peer} sent {len(wanted) - missing} of {len(wanted)} blocks within {timeout:.0f} s"
                ) from None
            done = True
            return list(blocks)
        finally:
            self._release(self._blocks, peer, futures)
            if not done:
                with contextlib.suppress(NetworkError):
                    await self._cancel(peer, wanted)

    # -- internals ------------------------------------------------------------------------
    def _register(
        self, table: dict[str, dict[CID, asyncio.Future[T]]], peer: str, cids: Sequence[CID]
    ) -> dict[CID, asyncio.Future[T]]:
        pending = table.setdefault(peer, {})
        if len(self._blocks.get(peer, {})) + len(self._haves.get(peer, {})) + len(cids) > MAX_PENDING_PER_PEER:
            raise NetworkError(f"already {MAX_PENDING_PER_PEER} bitswap wants outstanding at {peer}")
        loop = asyncio.get_running_loop()
        futures: dict[CID, asyncio.Future[T]] = {}
        for cid in cids:
            future = pending.get(cid)
            if future is None or future.done():
                future = pending[cid] = loop.create_future()
            futures[cid] = future
            self._waiters[future] = self._waiters.get(future, 0) + 1
        return futures

    def _release(
        self, table: dict[str, dict[CID, asyncio.Future[T]]], peer: str, futures: dict[CID, asyncio.Future[T]]
    ) -> None:
        """Forget this caller's wants; a want another caller still waits on stays."""
        pending = table.get(peer, {})
        for cid, future in futures.items():
            left = self._waiters.pop(future, 1) - 1
            if left:
                self._waiters[future] = left
                continue
            if pending.get(cid) is future:
                del pending[cid]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning for a shared one
        if not pending:
            table.pop(peer, None)

    async def _want(self, peer: str, cids: Sequence[CID], kind: WantType) -> None:
        entries = [
            WantEntry(cid, priority=len(cids) - i, want_type=kind, send_dont_have=True) for i, cid in enumerate(cids)
        ]
        await self._send(peer, self._protocols, [encode(Message(entries=entries))])

    async def _cancel(self, peer: str, cids: Sequence[CID]) -> None:
        entries = [WantEntry(cid, cancel=True) for cid in cids]
        await self._send(peer, self._protocols, [encode(Message(entries=entries))])
