"""The node's stream service: appends at the origin, serving and pulling replicas, tails, heads.

The node never holds a writer's key: it accepts only entries the writer signed, checks
each (signature, stream id, bounds) and the chain (seq, prev) before storing it, and a
replica applies the same checks to what it pulls, so a holder cannot feed it anything the
writer did not sign. Verification and LMDB work run in threads, never on the event loop.

A replica pulls from its source when it subscribes, when the source notices it that the head
moved (it watches the stream there: :mod:`node.streams.live`), and every ``poll_seconds`` as a
fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from node.errors import NetworkError
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from node.streams.compaction import compact
from node.streams.groupcommit import AppendGroups
from node.streams.live import WATCH_RENEW, LiveReplica, Watchers
from node.streams.model import Refusal, Retention, StreamInfo, StreamRefused
from node.streams.policy import PolicyGate
from node.streams.protocol import (
    MAX_BATCH,
    PROTOCOL,
    Entries,
    Heads,
    Since,
    StreamProtocolError,
    Watch,
    parse_entries,
    parse_request,
)
from node.streams.store import StreamStore
from storage import dagcbor
from storage.blockstore import BlockStore
from storage.cid import CID, DAG_CBOR
from storage.streamentry import Entry, EntryError, verify_entry

log = logging.getLogger("mycelnet.streams")

MAX_HEADS = 24  # heads carried in one announcement (its 8 KiB bound binds the rest)
POLL_SECONDS = 2.0
MAX_SYNC_ROUNDS = 64  # batches one sync pulls before yielding to the next poll
MAX_SERVING_PER_PEER = 2  # a peer's requests answered at a time ...
MAX_QUEUED_PER_PEER = 8  # ... and waiting; past that its requests get an empty reply
MAX_TAILS = 256  # live SSE tails this node keeps open at once


def verify_batch(stream: str, raws: Sequence[bytes]) -> list[Entry]:
    """Verify every entry of a batch for ``stream`` (blocking: signatures); StreamRefused on the first bad one."""
    entries = []
    for index, raw in enumerate(raws):
        try:
            entry = verify_entry(raw)
        except EntryError as exc:
            raise StreamRefused(Refusal(exc.reason), str(exc), index) from None
        if entry.stream != stream:
            raise StreamRefused(Refusal.WRONG_STREAM, f"entry {index} belongs to {entry.stream}, not {stream}", index)
        entries.append(entry)
    return entries


def stored_entry(raw: bytes) -> Entry:
    """An entry this node's store holds, decoded without checking its signature again.

    Only for bytes read back from this node's own LMDB, where nothing lands unverified (every
    append and every pull goes through :func:`verify_batch` first): the trigger loop reads each
    entry once more, and a second Ed25519 check plus the full shape check was about half of its
    node-side time per batch. The CID is still hashed from the bytes, so the receipt names
    exactly what the agent read. Anything a peer or a client sends is verified in full.
    """
    record = dagcbor.decode(raw)["entry"]
    return Entry(stream=record["stream"], writer=record["writer"], name=record["name"], seq=record["seq"],
                 prev=record["prev"], payload=record.get("payload"), payload_cid=record.get("payload_cid"),
                 time=record["time"], cid=CID.for_block(raw, DAG_CBOR), raw=raw)  # fmt: skip


class StreamService:
    def __init__(
        self,
        store: StreamStore,
        network: P2PNetwork,
        metrics: Metrics,
        announced: Callable[[], list[dict[str, Any]]] = list,
        blocks: BlockStore | None = None,
        poll_seconds: float | None = None,
        policy: PolicyGate | None = None,
    ) -> None:
        self.store = store
        self.poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
        self.policy = policy or PolicyGate(store)  # the writers' stream policies (node.streams.policy)
        self.blocks = blocks  # where compacted entries' snapshots go (None: they are dropped)
        self._compactions: dict[str, asyncio.Task[None]] = {}
        self._compacted_to: dict[str, int] = {}  # the first seq of the live log at the last compaction pass
        self.network = network
        self.metrics = metrics
        self._announced = announced  # peers' announcement payloads (the peer table's view)
        self._heads: dict[str, tuple[int, CID, float]] = {}  # origin streams: seq, head CID, last append
        self._replica_heads: dict[str, tuple[int, CID, float]] = {}  # replicated streams: the same, last pull
        self._changed: dict[str, asyncio.Event] = {}
        self._sync_locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()  # set by subscribe(): the poll loop has a stream to pull
        self.on_head_moved: Callable[[], None] | None = None  # a head in heads() moved (the announcer wakes)
        self._serving: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}  # peer -> (running, [admitted])
        self.tails = 0
        self._groups = AppendGroups(
            store,
            verify_batch,
            self.appended,
            lambda exc: self.metrics.inc("stream_entries_refused_total", reason=exc.refusal.value),
        )
        self._sources: dict[str, str] = {}  # replicated streams -> the peer each is pulled from
        self.watchers = Watchers(network, metrics, lambda s: s in self._heads or s in self._replica_heads)
        self.live = LiveReplica(
            network,
            metrics,
            self._sources.get,
            lambda s: self._replica_heads[s][0] if s in self._replica_heads else 0,
            self.sync,
        )

    async def start(self) -> None:
        for info in await asyncio.to_thread(self.store.streams):
            if info.head_cid is not None:
                held = self._heads if info.origin else self._replica_heads
                held[info.stream] = (info.head_seq, info.head_cid, info.updated)
        self._sources.update(await asyncio.to_thread(self.store.subscriptions))
        self._task = asyncio.create_task(self._poll_loop())
        for stream in await asyncio.to_thread(self.store.compacting_streams):  # left by a stop mid-way
            self._compactions[stream] = asyncio.create_task(self._compact(stream))

    async def stop(self) -> None:
        for task in list(self._compactions.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task  # a snapshot half-written would only be written again, but the stores close next
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._groups.stop()
        await self.live.stop()
        await self.watchers.stop()

    # -- the origin ------------------------------------------------------------------
    async def append(self, stream: str, raws: Sequence[bytes], retention: Retention | None = None) -> StreamInfo:
        """Verify and append a batch of signed entries, all or none (StreamRefused says why not);
        answered once durable, concurrent appends sharing commits (:mod:`node.streams.groupcommit`)."""
        return await self._groups.append(stream, raws, retention)

    def append_own(self, raws: Sequence[bytes]) -> StreamInfo:
        """Append entries this node signed itself just now (a trigger's output), without verifying
        the signature again; blocking (run it in a thread), then call :meth:`appended` on the loop."""
        return self.store.append([stored_entry(raw) for raw in raws], origin=True)

    def appended(self, info: StreamInfo, count: int) -> None:
        """After an origin append: the announced head, the waiting consumers, compaction."""
        self.metrics.inc("stream_entries_appended_total", count)
        assert info.head_cid is not None
        self._heads[info.stream] = (info.head_seq, info.head_cid, info.updated)
        self._notify(info.stream)
        self.compact_soon(info)

    def origin_head(self, stream: str) -> int | None:
        """The head seq of a stream appended here, from memory (None: not an origin stream here)."""
        held = self._heads.get(stream)
        return held[0] if held is not None else None

    def compact_soon(self, info: StreamInfo) -> None:
        """Snapshot the entries retention took out of a stream, if it took any since the last pass
        (one task per stream at a time)."""
        stream = info.stream
        if info.first_seq <= self._compacted_to.get(stream, 1) or stream in self._compactions:
            return
        self._compacted_to[stream] = info.first_seq
        self._compactions[stream] = asyncio.create_task(self._compact(stream))

    async def _compact(self, stream: str) -> None:
        try:
            written = await asyncio.to_thread(compact, self.store, self.blocks, stream)
            self.metrics.inc("stream_snapshots_total", len(written))
        except Exception as exc:  # kept in the compacting table: the next append tries again
            log.warning("stream %s: compaction failed: %s: %s", stream, type(exc).__name__, exc)
        finally:
            self._compactions.pop(stream, None)

    def heads(self) -> dict[str, dict[str, Any]]:
        """The announcement's ``streams`` field: the most recently appended origin streams, then the
        most recently pulled replicas, MAX_HEADS in all (origins first: they are where entries begin).

        A replica's head has the origin's shape, ``{"seq", "cid"}``, with no mark: the announcement
        validator of nodes from before replicas were announced accepts exactly those two keys per
        head and drops the whole announcement on any other (a third key, or a new top-level field),
        so a mark would make every replicating node vanish from their peer tables. To such a node a
        replica is one more holder to pull from, which is safe: every pulled entry is checked against
        the writer's signature and the chain. Who is freshest is in the seq; where placement must
        tell origin from replica it goes by the seq (the origin is never behind a replica of its own
        stream) and by this node's own store for itself (:mod:`node.triggers.placement`).
        """
        newest = sorted(self._heads.items(), key=lambda item: item[1][2], reverse=True)[:MAX_HEADS]
        heads = {stream: {"seq": seq, "cid": cid} for stream, (seq, cid, _) in newest}
        replicas = sorted(self._replica_heads.items(), key=lambda item: item[1][2], reverse=True)
        for stream, (seq, cid, _) in replicas:
            if len(heads) >= MAX_HEADS:
                break
            heads.setdefault(stream, {"seq": seq, "cid": cid})
        return heads

    def holders(self, stream: str) -> list[dict[str, Any]]:
        """Peers whose announcement carries a head of ``stream`` (where placement finds its bytes)."""
        found = []
        for payload in self._announced():
            head = payload.get("streams", {}).get(stream)
            if head is not None:
                found.append({"peer": payload["peer"], "seq": head["seq"], "cid": str(head["cid"])})
        return found

    # -- reads and tails -------------------------------------------------------------
    async def info(self, stream: str) -> StreamInfo:
        info = await asyncio.to_thread(self.store.info, stream)
        if info is None:
            raise StreamRefused(Refusal.NOT_FOUND, f"no stream {stream} on this node")
        return info

    async def since(self, stream: str, after: int, limit: int) -> list[Entry]:
        raws = await asyncio.to_thread(self.store.since, stream, after, limit)
        return await asyncio.to_thread(lambda: [verify_entry(raw) for raw in raws])

    async def stored(self, stream: str, after: int, limit: int) -> list[Entry]:
        """Like :meth:`since`, for this node's own consumers (triggers): see :func:`stored_entry`."""
        raws = await asyncio.to_thread(self.store.since, stream, after, limit)
        return await asyncio.to_thread(lambda: [stored_entry(raw) for raw in raws])

    def changed(self, stream: str) -> asyncio.Event:
        """An event set at the next new entry of ``stream`` (take it before reading, then wait)."""
        return self._changed.setdefault(stream, asyncio.Event())

    def _notify(self, stream: str) -> None:
        event = self._changed.pop(stream, None)
        if event is not None:
            event.set()
        held = self._heads.get(stream) or self._replica_heads.get(stream)
        if held is not None:
            self.watchers.moved(stream, held[0])  # the peers that replicate it from here
            if self.on_head_moved is not None:
                self.on_head_moved()

    # -- serving replicas --------------------------------------------------------------
    async def serve(self, peer: str, request: bytes) -> list[bytes]:
        """Answer one replica's request, within that peer's budget of concurrent requests."""
        running, admitted = self._serving.setdefault(peer, (asyncio.Semaphore(MAX_SERVING_PER_PEER), [0]))
        if admitted[0] >= MAX_SERVING_PER_PEER + MAX_QUEUED_PER_PEER:
            self.metrics.inc("stream_requests_refused_total")
            return []
        admitted[0] += 1
        try:
            async with running:
                screened = await self.policy.screen(peer, request)  # a policy request, or outside its regions
                return screened if screened is not None else await self._answer(peer, request)
        finally:
            admitted[0] -= 1
            if admitted[0] == 0:
                del self._serving[peer]

    async def _answer(self, peer: str, request: bytes) -> list[bytes]:
        try:
            asked = parse_request(request)
        except StreamProtocolError:
            self.metrics.inc("stream_requests_refused_total")
            return []
        if isinstance(asked, Watch):
            return self.watchers.watch(peer, asked.stream).frames()
        if isinstance(asked, Heads):
            self.live.noticed(peer, asked)
            return []
        self.watchers.pulled(peer, asked.stream)  # before reading: a move after this read is noticed
        info = await asyncio.to_thread(self.store.info, asked.stream)
        if info is None:
            return Entries(0, False, []).frames()
        raws = await asyncio.to_thread(self.store.since, asked.stream, asked.after, asked.limit)
        return Entries(info.head_seq, info.forked, raws).frames()

    # -- replicating -----------------------------------------------------------------
    async def subscribe(self, stream: str, source: str) -> StreamInfo | None:
        """Replicate ``stream`` from peer ``source`` from now on; pulls what it has at once (StreamRefused
        ``outside_regions`` when the stream's policy excludes this node's region)."""
        await self.policy.before_pull(stream, source, self.network, force=True)
        await asyncio.to_thread(self.store.subscribe, stream, source)
        self._sources[stream] = source
        self._subscribed.set()
        await self.live.watch(stream, source)  # before the pull: a move after it is noticed
        await self.sync(stream, source)
        return await asyncio.to_thread(self.store.info, stream)

    async def sync(self, stream: str, source: str) -> int:
        """Pull and verify the entries ``source`` holds past this node's head; returns how many were added."""
        lock = self._sync_locks.setdefault(stream, asyncio.Lock())
        added = 0
        async with lock:
            await self.policy.before_pull(stream, source, self.network)  # its policy may exclude this node
            for _ in range(MAX_SYNC_ROUNDS):
                info = await asyncio.to_thread(self.store.info, stream)
                asked = Since(stream, info.head_seq if info else 0, MAX_BATCH)
                frames = await self.network.request(source, PROTOCOL, asked.encode(), timeout=15)
                try:
                    answer = parse_entries(frames, asked)
                except StreamProtocolError as exc:  # a refusal by the stream's policy is StreamRefused outside_regions
                    bad = NetworkError(f"peer {source} answered a stream request badly: {exc}")
                    raise self.policy.pull_refused(stream, source, exc) or bad from None
                if not answer.entries:
                    break
                raws = answer.entries

                def verified_append(raws: list[bytes] = raws) -> StreamInfo:  # one thread hop for both
                    return self.store.append(verify_batch(stream, raws), origin=False, source=source)

                try:
                    info = await asyncio.to_thread(verified_append)
                except StreamRefused as exc:
                    self.metrics.inc("stream_entries_refused_total", reason=exc.refusal.value)
                    raise
                if info.head_cid is not None and not info.origin:  # announced: placement finds the replica
                    self._replica_heads[stream] = (info.head_seq, info.head_cid, info.updated)
                self.compact_soon(info)
                added += len(raws)
                self.metrics.inc("stream_entries_replicated_total", len(raws))
                self._notify(stream)
                if len(answer.entries) < MAX_BATCH:
                    break
        return added

    async def _poll_loop(self) -> None:
        """Renew the watches when due and pull every stream each ``poll_seconds`` (the fallback).
        A node that replicates nothing has nothing to renew or pull: it sleeps until the first
        :meth:`subscribe` (it read the store and woke a worker thread every poll, for nothing)."""
        next_poll = 0.0
        while True:
            subscriptions = await asyncio.to_thread(self.store.subscriptions)
            self._sources.update(subscriptions)
            if not subscriptions:
                self._subscribed.clear()
                if not self._sources:  # none in memory either: wait for one (subscribe sets the event)
                    await self._subscribed.wait()
                    continue
            polling = time.monotonic() >= next_poll
            if polling:
                next_poll = time.monotonic() + self.poll_seconds
            for stream, source in subscriptions.items():
                try:
                    await self.live.watch(stream, source)  # only when due
                    if polling:
                        await self.sync(stream, source)
                except (NetworkError, StreamRefused) as exc:
                    log.info("replicating %s from %s: %s", stream, source, exc)
                except Exception:  # a local fault (disk, store) on one stream must not end every stream's replication
                    self.metrics.inc("stream_replication_errors_total")
                    log.exception("replicating %s from %s failed; retried at the next poll", stream, source)
            await asyncio.sleep(max(0.0, min(next_poll - time.monotonic(), WATCH_RENEW)))
