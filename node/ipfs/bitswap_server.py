"""Serving Bitswap wants: blocks for want-block, HAVE/DONT_HAVE for want-have.

Each peer has a ledger of wants not yet answered (at most MAX_WANTS_PER_PEER; a full
wantlist replaces it, a cancel removes an entry). One task per peer works through its
ledger, highest priority first, ROUND entries at a time, reading the next round while
the last is sent; at most MAX_SERVING peers are read for at once, so a crowd of peers
shares the store threads instead of queueing reads without bound. Block reads, encoding
and the privacy checks run in a store thread, never on the event loop. A want is
answered once and then forgotten: a block that arrives here later is not sent unasked
(the peer asks again, as Helia and Kubo do on a new session).

Replies go on a new stream the node opens (Bitswap streams are one-way), in the wire form
of the protocol the peer spoke: 1.0.0 (and the unversioned ``/ipfs/bitswap``) gets ``blocks``,
1.1.0+ ``payload`` with each CID's prefix, and only 1.2.0 gets block presences. A message
stays under the receiver's 4 MiB limit; a block too large for one message is treated as
not held.

Private data: a block the serving gate does not allow to this peer is answered exactly
as one this node lacks (DONT_HAVE when the peer asked for it, otherwise nothing), so an
outsider learns neither the bytes nor that they are here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from node.ipfs.bitswap_pb import (
    MAX_MESSAGE,
    BlockPresence,
    Message,
    Payload,
    Presence,
    WantEntry,
    WantType,
    encode,
    payload_size,
    prefix_of,
)
from node.metrics import Metrics
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import BlockNotFoundError, StorageError

log = logging.getLogger("mycelnet.bitswap")

BITSWAP_120 = "/ipfs/bitswap/1.2.0"
BITSWAP_110 = "/ipfs/bitswap/1.1.0"
BITSWAP_100 = "/ipfs/bitswap/1.0.0"
BITSWAP_LEGACY = "/ipfs/bitswap"  # the unversioned name boxo still serves: 1.0.0's wire form
PROTOCOLS = (BITSWAP_120, BITSWAP_110, BITSWAP_100, BITSWAP_LEGACY)

MAX_WANTS_PER_PEER = 1024  # as boxo and Helia bound a peer's wantlist
MAX_PEERS = 256  # peers with unanswered wants at once; past that new ledgers are refused
MAX_SERVING = 4  # peers whose wants are being read and sent at once
ROUND = 16  # wants answered per round (at 256 KiB blocks, ~4 MiB read: about one message)
MESSAGE_BUDGET = MAX_MESSAGE - (16 << 10)  # room for presences and framing under the receiver's limit
SEND_TIMEOUT = 30.0
T = TypeVar("T")

Sender = Callable[[str, Sequence[str], Sequence[bytes]], Awaitable[str]]
OffLoop = Callable[..., Awaitable[T]]


class ServingGate(Protocol):
    def may_send(self, peer: str, cid: CID) -> bool:
        """Whether ``cid`` may go to ``peer`` (runs in a store thread)."""


@dataclass
class _Ledger:
    protocol: str
    wants: dict[CID, WantEntry] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class BitswapServer:
    def __init__(
        self,
        store: BlockStore,
        gate: ServingGate,
        metrics: Metrics,
        send: Sender,
        off_loop: Callable[..., Awaitable[list[bytes]]],
    ) -> None:
        self.store = store
        self.gate = gate
        self.metrics = metrics
        self._send = send
        self._off_loop = off_loop
        self._ledgers: dict[str, _Ledger] = {}
        self._serving = asyncio.Semaphore(MAX_SERVING)

    def on_wantlist(self, peer: str, protocol: str, entries: Sequence[WantEntry], full: bool) -> None:
        """Take a peer's wantlist update (on the loop: dict work only) and start serving it."""
        ledger = self._ledgers.get(peer)
        if ledger is None:
            if len(self._ledgers) >= MAX_PEERS:
                self.metrics.inc("bitswap_wants_dropped_total", len(entries))
                return
            ledger = self._ledgers[peer] = _Ledger(protocol)
        ledger.protocol = protocol
        if full:
            ledger.wants.clear()
        dropped = 0
        for entry in entries:
            if entry.cancel:
                ledger.wants.pop(entry.cid, None)
            elif entry.cid in ledger.wants or len(ledger.wants) < MAX_WANTS_PER_PEER:
                ledger.wants[entry.cid] = entry
            else:
                dropped += 1
        if dropped:
            self.metrics.inc("bitswap_wants_dropped_total", dropped)
        if not ledger.wants:
            if ledger.task is None:
                del self._ledgers[peer]
            return
        if ledger.task is None:
            ledger.task = asyncio.create_task(self._serve(peer, ledger))

    async def close(self) -> None:
        tasks = [ledger.task for ledger in self._ledgers.values() if ledger.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._ledgers.clear()

    async def _serve(self, peer: str, ledger: _Ledger) -> None:
        """Answer the ledger round by round; the next round is read while the last one is sent."""
        sending: asyncio.Future[str] | None = None
        try:
            while ledger.wants:
                async with self._serving:
                    batch = sorted(ledger.wants.values(), key=lambda e: -e.priority)[:ROUND]
                    for entry in batch:
                        del ledger.wants[entry.cid]
                    encoded = await self._off_loop(self.answer_encoded, peer, ledger.protocol, batch)
                if sending is not None:
                    await sending  # one round on the wire at a time: memory stays at ~2 rounds per peer
                    sending = None
                if encoded:
                    sending = asyncio.ensure_future(self._send(peer, [ledger.protocol], encoded))
            if sending is not None:
                await sending
        except Exception as exc:  # NetworkError, or the host stopping (BridgeClosed): the peer is not served
            log.info("bitswap: could not answer %s: %s", peer, exc)
            ledger.wants.clear()
        finally:
            if sending is not None and not sending.done():
                sending.cancel()
            ledger.task = None
            if not ledger.wants and self._ledgers.get(peer) is ledger:
                del self._ledgers[peer]

    def answer_encoded(self, peer: str, protocol: str, entries: Sequence[WantEntry]) -> list[bytes]:
        """:meth:`answer`, encoded for the wire (in a store thread: no megabyte copies on the loop)."""
        return [encode(message) for message in self.answer(peer, protocol, entries)]

    def answer(self, peer: str, protocol: str, entries: Sequence[WantEntry]) -> list[Message]:
        """The messages that answer ``entries`` (in a store thread: block reads, privacy lookups)."""
        presences_allowed = protocol == BITSWAP_120
        messages: list[Message] = []
        current = Message()
        size = 0
        for entry in entries:
            allowed = self.gate.may_send(peer, entry.cid)
            if not allowed and self.store.has(entry.cid):
                self.metrics.inc("private_blocks_refused_total")
            if entry.want_type == WantType.HAVE and presences_allowed:
                if allowed and self.store.has(entry.cid):
                    current.presences.append(BlockPresence(entry.cid, Presence.HAVE))
                elif entry.send_dont_have:
                    current.presences.append(BlockPresence(entry.cid, Presence.DONT_HAVE))
                continue
            data = self._read(entry.cid) if allowed else None
            prefix = prefix_of(entry.cid)
            cost = payload_size(len(data), len(prefix)) if data is not None else 0
            if data is None or cost > MESSAGE_BUDGET:
                if entry.send_dont_have and presences_allowed:
                    current.presences.append(BlockPresence(entry.cid, Presence.DONT_HAVE))
                continue
            if size + cost > MESSAGE_BUDGET:
                messages.append(current)
                current, size = Message(), 0
            if protocol in (BITSWAP_100, BITSWAP_LEGACY):
                current.blocks.append(data)
            else:
                current.payload.append(Payload(prefix, data))
            size += cost
            self.metrics.inc("blocks_served_total")
            self.metrics.inc("bytes_out_total", len(data))
            self.metrics.inc("bitswap_blocks_sent_total")
        if current.blocks or current.payload or current.presences:
            messages.append(current)
        return messages

    def _read(self, cid: CID) -> bytes | None:
        try:
            return self.store.get(cid)  # verified when the store is set to: a corrupt block is never served
        except (BlockNotFoundError, StorageError):
            return None
