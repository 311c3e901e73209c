"""Block exchange over ``/mycel/blocks/1.0.0``: fetch whole DAGs, verifying every block.

Request: dag-cbor ``{"want": [CID, ...]}`` (at most 128) or ``{"have": [CID]}``.
Reply: one frame per distinct wanted CID, ``0x01 varint(len(cid)) cid block`` when held
or ``0x00 varint(len(cid)) cid`` when not; a ``have`` reply is one frame ``0x01``/``0x00``.

Serving is bounded against amplification: a CID wanted twice in one request is sent
once (otherwise a 5 KB request for one 256 KiB block 128 times draws a 32 MiB reply),
each peer gets at most MAX_SERVING_PER_PEER requests answered at a time with at most
MAX_QUEUED_PER_PEER more waiting, and requests past that are refused with an empty reply.

A fetch walks the DAG from the root; blocks already stored are read locally (so a
fetch resumes where an interrupted one stopped). A provider that sends a block that
does not hash to its CID is dropped for the rest of the fetch, and the batch is asked
of the next provider.

A fetch is a pipeline: IN_FLIGHT requests stay in flight (a sliding window, not
lock-step batches), each reply is verified in a store thread as it arrives (every
block hashed exactly once, before it is counted or queued), and a write-behind task
commits verified blocks to LMDB while the next ones travel. The queue between them
is bounded (STORE_QUEUE batches), so a slow disk slows the fetch instead of filling
memory; a write error (quota, disk) ends the fetch with that error.

A fetch holds the store's import session from its first block to its end (and, in
:meth:`BlockExchange.fetch_and_pin`, through the pin), so a GC in this or another
process (``mycel gc``) cannot delete blocks that are fetched but not yet pinned.

Nothing here walks the store or hashes on the event loop: verification, local
lookups of interior nodes and DAG walks run in a small executor of the exchange's
own, so a job that keeps the default executor busy cannot hold up serving peers.
A ``have`` probe for a pinned DAG is one lookup of the size recorded in its pin.

Private data: every block and every ``have`` passes the node's serving gate
(:class:`node.privacy.gate.ServingGate`). A private block wanted by a peer that its
dataset's policy does not name as a replica holder is answered exactly like a block
this node lacks (``0x00``), and so is a ``have`` for a private root: an outsider learns
neither the bytes nor that this node holds them. A ``have`` answered yes to a holder
carries the dataset's owner-signed policy after the size (older readers ignore it), so
a holder that was never sent the policy learns it before the first block arrives and
stores the replica as private.

Peers that do not speak ``/mycel/blocks`` (IPFS nodes such as Helia or Kubo) are reached
through an optional fallback block source (Bitswap, :mod:`node.ipfs.bitswap_client`): a
``have`` probe that the peer refuses as an unknown protocol is retried as a want-have there
(never one that merely failed: a mycelnet holder must send a private root's policy, which
Bitswap cannot carry), and a peer that says yes is asked
for its batches the same way, each block verified against its CID. Such a holder's DAG
size is unknown and reported as 0.

A provider that announces the bulk path (:mod:`node.bulk`) is first asked for the whole DAG
as one CAR stream (an optional :class:`BulkSource`): its verified blocks go through the same
write-behind, byte limit and counters as the others. A stream that breaks the rules
(:class:`SourceRefused`) drops the provider like a bad block does; one that fails or ends early
leaves what was verified stored, and the walk over ``/mycel/blocks`` goes on from there.
``fetch_bytes_total{path=car|blocks|bitswap}`` and :attr:`FetchStats.by_path` say which path
moved the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

from node.errors import NetworkError, ProtocolNotSupported
from node.metrics import Metrics
from node.p2p.framing import Frame
from node.p2p.network import P2PNetwork
from storage import dagcbor
from storage.blockstore import BlockStore, ImportSession, VerifiedBlock, verify_block
from storage.cid import CID
from storage.dag import has_links, links_of
from storage.errors import BlockNotFoundError, BlockVerificationError, CodecError, StorageError
from storage.leases import PinLease
from storage.varint import decode_uvarint, encode_uvarint

log = logging.getLogger("mycelnet.exchange")

PROTOCOL = "/mycel/blocks/1.0.0"
MAX_WANT = 128
BATCH = 16
IN_FLIGHT = 8  # requests one fetch keeps going: measured ~20% faster than 4 on loopback
MAX_SERVING_PER_PEER = IN_FLIGHT  # what one fetch of ours keeps in flight
STORE_THREADS = 2 * MAX_SERVING_PER_PEER  # walks, verification, block reads; one peer cannot take them all
MAX_QUEUED_PER_PEER = 32  # room for several concurrent fetches and probes from one peer
MAX_FALLBACK_PEERS = 1024
STORE_QUEUE = 8  # verified batches waiting for LMDB: with IN_FLIGHT, bounds a fetch to ~64 MiB of 256 KiB blocks
WRITE_COALESCE = 32 << 20  # at most this many bytes in one LMDB commit when the writer catches up
T = TypeVar("T")


@dataclass
class FetchStats:
    blocks_fetched: int = 0
    bytes_fetched: int = 0
    blocks_local: int = 0
    bad_providers: int = 0
    by_path: dict[str, int] = field(default_factory=dict)  # bytes moved, per path: car, blocks, bitswap


class BlockExchange:
    def __init__(
        self, store: BlockStore, network: P2PNetwork, metrics: Metrics, gate: ExchangeGate | None = None
    ) -> None:
        self.store = store
        self.network = network
        self.metrics = metrics
        self.gate = gate or _Open()  # the privacy rules: which block may go to whom, what a holder learns
        self.bandwidth: dict[str, float] = {}  # bytes/s measured on past fetches, per peer
        self._io = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="exchange-store")
        self._peer_budgets: dict[str, _PeerBudget] = {}
        self.fallback: FallbackSource | None = None  # Bitswap, for peers without /mycel/blocks
        self.bulk: BulkSource | None = None  # whole DAGs in one CAR stream, from providers that offer it
        self._fallback_peers: set[str] = set()  # peers that answered a probe only through the fallback
        network.handle(PROTOCOL, self._serve)

    def close(self) -> None:
        """Stop the store threads (after the network has stopped: nothing new reaches them)."""
        self._io.shutdown(wait=True, cancel_futures=True)

    async def _off_loop(self, work: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, work, *args)

    async def have_size(self, cid: CID) -> int | None:
        """The size of the DAG under ``cid`` when all of it is stored here, else None.

        A pinned DAG answers from its pin record (one lookup, no walk, on the loop); any
        other is walked off the loop.
        """
        recorded = self.store.pinned_size(cid)
        if recorded is not None:
            return recorded
        return await self._off_loop(self.store.complete_dag_size, cid)

    # -- serving ---------------------------------------------------------------------
    async def _serve(self, peer: str, request: bytes) -> list[Frame]:
        """Answer one request, within the peer's budget of concurrent requests."""
        budget = self._peer_budgets.setdefault(peer, _PeerBudget())
        if budget.admitted >= MAX_SERVING_PER_PEER + MAX_QUEUED_PER_PEER:
            self.metrics.inc("block_requests_refused_total")
            return []
        budget.admitted += 1
        try:
            async with budget.running:
                return await self._answer(peer, request)
        finally:
            budget.admitted -= 1
            if budget.admitted == 0:
                del self._peer_budgets[peer]

    async def _answer(self, peer: str, request: bytes) -> list[Frame]:
        try:
            message = dagcbor.decode(request)
        except CodecError:
            return []
        if not isinstance(message, dict):
            return []
        if isinstance(message.get("have"), list) and message["have"] and isinstance(message["have"][0], CID):
            root = message["have"][0]
            if not await self._off_loop(self.gate.may_send, peer, root):  # index lookups: off the loop
                self.metrics.inc("private_blocks_refused_total")
                return [b"\x00"]  # the same answer as for a DAG not held here
            size = await self.have_size(root)
            if size is None:
                return [b"\x00"]
            policy = await self._off_loop(self.gate.policy_for, root)  # a holder learns the policy with the answer
            return [b"\x01" + encode_uvarint(size) + (policy or b"")]  # whole DAG held, and its size
        wants = message.get("want")
        if not isinstance(wants, list) or len(wants) > MAX_WANT:
            return []
        distinct = list(dict.fromkeys(c for c in wants if isinstance(c, CID)))  # each block sent once
        return await self._off_loop(self._frames_for, peer, distinct)

    def _frames_for(self, peer: str, wants: list[CID]) -> list[Frame]:
        """A held block's frame is (header, block): the block is copied once, into the write."""
        frames: list[Frame] = []
        for cid in wants:
            key = bytes(cid)
            header = encode_uvarint(len(key)) + key
            if not self.gate.may_send(peer, cid):
                self.metrics.inc("private_blocks_refused_total")
                frames.append(b"\x00" + header)  # the same answer as for a block not held here
                continue
            try:
                data = self.store.get(cid)  # verified: a corrupted local block is never served
            except (BlockNotFoundError, StorageError):
                frames.append(b"\x00" + header)
                continue
            frames.append((b"\x01" + header, data))
            self.metrics.inc("blocks_served_total")
            self.metrics.inc("bytes_out_total", len(data))
        return frames

    # -- fetching --------------------------------------------------------------------
    async def probe(self, peer: str, cid: CID) -> int | None:
        """The size of the DAG under ``cid`` if ``peer`` holds all of it, else None."""
        try:
            frames = await self.network.request(peer, PROTOCOL, dagcbor.encode({"have": [cid]}), timeout=10)
        except ProtocolNotSupported:  # an IPFS peer: only then Bitswap (it carries no privacy policy)
            return await self._probe_fallback(peer, cid)
        except NetworkError:
            return None
        if len(frames) != 1 or not frames[0].startswith(b"\x01"):
            return None
        try:
            size, end = decode_uvarint(frames[0], 1)
        except StorageError:
            return None
        if len(frames[0]) > end:  # the owner-signed policy of a private root: checked, then kept
            await self._off_loop(self.gate.learn_policy, cid, frames[0][end:])
        return size

    async def _probe_fallback(self, peer: str, cid: CID) -> int | None:
        """Ask a connected peer without /mycel/blocks over the fallback source; its DAG size is unknown (0)."""
        if self.fallback is None or peer not in await self.network.peers():
            return None  # a provider record of a peer not connected: no second dial
        if not await self.fallback.has(peer, cid):
            return None
        if len(self._fallback_peers) >= MAX_FALLBACK_PEERS:
            self._fallback_peers.clear()  # a bound, not a cache policy: such peers are re-probed
        self._fallback_peers.add(peer)
        return 0

    async def find_providers(self, cid: CID) -> list[str]:
        """Peers that hold ``cid``: DHT provider records, then connected peers asked directly.

        Every candidate is confirmed with a ``have`` request, so a stale provider record
        never makes it into a fetch.
        """
        return list(await self.holders(cid))

    async def holders(self, cid: CID) -> dict[str, int]:
        """Confirmed holders of the whole DAG under ``cid``, with the DAG's size."""
        try:
            from_dht = await self.network.find_providers(str(cid))
        except NetworkError as exc:
            log.info("DHT lookup for %s failed: %s", cid, exc)
            from_dht = []
        own = self.network.peer_id
        candidates = list(dict.fromkeys([p for p in from_dht if p != own] + await self.network.peers()))
        answers = await asyncio.gather(*(self.probe(peer, cid) for peer in candidates))
        return {peer: size for peer, size in zip(candidates, answers, strict=True) if size is not None}

    async def fetch(
        self, root: CID, providers: Sequence[str] | None = None, *, max_bytes: int | None = None
    ) -> FetchStats:
        """Make the whole DAG under ``root`` local, block by verified block (GC held off meanwhile).

        With ``max_bytes`` (the API's per-request bound), :class:`FetchTooLarge` is raised before
        a batch that would take the fetched bytes past it is stored: a provider's claimed size is
        not trusted, the bytes actually received are counted.
        """
        with self.metrics.timed_fetch():
            async with self._import_session():
                return await self._fetch(root, providers, max_bytes)

    async def fetch_and_pin(
        self, root: CID, providers: Sequence[str] | None = None, name: str = "", lease: PinLease | None = None
    ) -> FetchStats:
        """Fetch the DAG under ``root`` and pin it, with GC held off from the first block to the pin.

        The pin checks completeness in the transaction that writes it, so the DAG is
        complete and pinned when this returns, whatever a concurrent ``mycel gc`` does.
        Without a ``lease`` (this node asked for the DAG) the pin is permanent; with one
        (fetched for a remote peer's job) it expires, and the lease's quota applies.
        """
        with self.metrics.timed_fetch():
            async with self._import_session():
                stats = await self._fetch(root, providers, None)
                await self._off_loop(partial(self.store.pin, root, name, lease=lease))
        return stats

    @asynccontextmanager
    async def _import_session(self) -> AsyncIterator[None]:
        """The store's import session, waited for off the loop (a running GC can take seconds)."""
        opening = asyncio.ensure_future(self._off_loop(self.store.open_import_session))
        try:
            session = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_session)  # taken after we gave up: release it at once
            raise
        try:
            yield
        finally:
            session.close()

    async def _fetch(self, root: CID, providers: Sequence[str] | None, max_bytes: int | None) -> FetchStats:
        candidates = list(providers) if providers is not None else await self.find_providers(root)
        if not candidates and not self.store.has(root):
            raise NotFoundOnNetwork(f"{root} is not stored here and no connected peer has it")
        stats = FetchStats()
        if self.bulk is not None and not await self._off_loop(self.store.has, root):
            for provider in [peer for peer in candidates if self.bulk.offers(peer)]:
                if await self._fetch_bulk(self.bulk, root, provider, candidates, stats, max_bytes):
                    return stats
        store_queue: asyncio.Queue[list[VerifiedBlock]] = asyncio.Queue(STORE_QUEUE)
        writer = asyncio.ensure_future(self._write_behind(root, store_queue))
        try:
            frontier = [root]
            seen: set[CID] = set()
            while frontier:
                wanted, next_frontier, local = await self._off_loop(self._local_step, frontier, seen)
                stats.blocks_local += local
                batches = [wanted[i : i + BATCH] for i in range(0, len(wanted), BATCH)]
                async with contextlib.aclosing(self._fetch_pipelined(batches, candidates, stats)) as arriving:
                    async for blocks, links in arriving:  # leaving early cancels the requests in flight
                        size = sum(len(block.data) for block in blocks)
                        if max_bytes is not None and stats.bytes_fetched + size > max_bytes:
                            raise FetchTooLarge(root, max_bytes)
                        stats.blocks_fetched += len(blocks)
                        stats.bytes_fetched += size
                        next_frontier.extend(links)
                        await _put_or_fail(store_queue, blocks, writer)  # waits while the writer is behind
                frontier = next_frontier
            await _put_or_fail(store_queue, [], writer)  # the end: everything before it gets written
            await writer
        finally:
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer  # a commit running in a thread finishes; nothing after it starts
        return stats

    async def _fetch_bulk(
        self,
        bulk: BulkSource,
        root: CID,
        provider: str,
        candidates: list[str],
        stats: FetchStats,
        max_bytes: int | None,
    ) -> bool:
        """The whole DAG from ``provider``'s bulk stream; False when it failed (what arrived verified is stored)."""
        store_queue: asyncio.Queue[list[VerifiedBlock]] = asyncio.Queue(STORE_QUEUE)
        writer = asyncio.ensure_future(self._write_behind(root, store_queue))
        started = time.perf_counter()
        moved = 0
        failure: Exception | None = None
        try:
            async with contextlib.aclosing(bulk.blocks(provider, root)) as arriving:
                async for blocks in arriving:
                    size = sum(len(block.data) for block in blocks)
                    if max_bytes is not None and stats.bytes_fetched + size > max_bytes:
                        raise FetchTooLarge(root, max_bytes)
                    stats.blocks_fetched += len(blocks)
                    stats.bytes_fetched += size
                    moved += size
                    self._moved(stats, "car", size)
                    await _put_or_fail(store_queue, blocks, writer)
        except SourceRefused as exc:
            self.metrics.inc("blocks_rejected_total")
            log.warning("dropping provider %s for this fetch: its bulk stream %s", provider, exc)
            if provider in candidates:
                candidates.remove(provider)
            stats.bad_providers += 1
            failure = exc
        except NetworkError as exc:
            log.info("bulk fetch of %s from %s stopped, going on over %s: %s", root, provider, PROTOCOL, exc)
            failure = exc
        except BaseException:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            raise
        await _put_or_fail(store_queue, [], writer)  # what was verified is kept: the walk resumes from it
        await writer
        if failure is not None:
            return False
        self._observe(provider, moved, time.perf_counter() - started)
        return True

    def _moved(self, stats: FetchStats, path: str, size: int) -> None:
        stats.by_path[path] = stats.by_path.get(path, 0) + size
        self.metrics.inc("fetch_bytes_total", size, path=path)

    async def _fetch_pipelined(
        self, batches: list[list[CID]], candidates: list[str], stats: FetchStats
    ) -> AsyncGenerator[tuple[list[VerifiedBlock], list[CID]], None]:
        """Verified batches as they arrive, with IN_FLIGHT requests kept going (a sliding window)."""
        pending: set[asyncio.Future[tuple[list[VerifiedBlock], list[CID]]]] = set()
        queued = iter(batches)
        try:
            while True:
                while len(pending) < IN_FLIGHT and (batch := next(queued, None)) is not None:
                    pending.add(asyncio.ensure_future(self._fetch_batch(batch, candidates, stats)))
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _write_behind(self, root: CID, store_queue: asyncio.Queue[list[VerifiedBlock]]) -> None:
        """Commit verified blocks while the next ones travel; an empty batch marks the end.

        Whatever has queued up meanwhile goes into one transaction (up to WRITE_COALESCE
        bytes), so a writer that fell behind catches up with fewer LMDB commits.
        """
        while True:
            blocks = await store_queue.get()
            done = not blocks
            size = sum(len(block.data) for block in blocks)
            while not done and size < WRITE_COALESCE and not store_queue.empty():
                more = store_queue.get_nowait()
                done = not more
                blocks.extend(more)
                size += sum(len(block.data) for block in more)
            if blocks:
                await self._off_loop(self._store_verified, root, blocks)
                self.metrics.inc("blocks_stored_total", len(blocks))
                self.metrics.inc("bytes_in_total", sum(len(block.data) for block in blocks))
            if done:
                return

    def _store_verified(self, root: CID, blocks: list[VerifiedBlock]) -> None:
        """Index what the privacy rules need (a private dataset's blocks) before the blocks are
        visible, then write them (in a store thread)."""
        self.gate.before_store(root, [block.cid for block in blocks])
        self.store.put_verified(blocks)

    def _local_step(self, frontier: list[CID], seen: set[CID]) -> tuple[list[CID], list[CID], int]:
        """Split a frontier into blocks to fetch and links of blocks already here (in a store thread)."""
        wanted: list[CID] = []
        next_frontier: list[CID] = []
        local = 0
        for cid in frontier:
            if cid in seen:
                continue
            seen.add(cid)
            if self.store.has(cid):
                local += 1
                if has_links(cid):
                    next_frontier.extend(links_of(cid, self.store.get(cid)))
            else:
                wanted.append(cid)
        return wanted, next_frontier, local

    async def _fetch_batch(
        self, batch: list[CID], candidates: list[str], stats: FetchStats
    ) -> tuple[list[VerifiedBlock], list[CID]]:
        while candidates:
            provider = candidates[0]
            try:
                started = time.perf_counter()
                if self.fallback is not None and provider in self._fallback_peers:
                    blocks = await self.fallback.get_blocks(provider, batch)  # each block verified on arrival
                    self._moved(stats, "bitswap", sum(len(block.data) for block in blocks))
                    return blocks, await self._off_loop(_links_of_blocks, blocks)
                frames = await self.network.request(provider, PROTOCOL, dagcbor.encode({"want": batch}))
                parsed = await self._off_loop(self._parse, frames, batch, provider)  # hashes every block once
                size = sum(len(block.data) for block in parsed[0])
                self._observe(provider, size, time.perf_counter() - started)
                self._moved(stats, "blocks", size)
                return parsed
            except (NetworkError, _BadProvider) as exc:
                if provider in candidates:  # a concurrent batch may have dropped it already
                    log.warning("dropping provider %s for this fetch: %s", provider, exc)
                    candidates.remove(provider)
                    stats.bad_providers += 1
        raise NetworkError(f"no provider could supply {len(batch)} block(s), first {batch[0]}")

    def _observe(self, peer: str, size: int, seconds: float) -> None:
        """Keep a moving average of the transfer rate from each peer (for placement)."""
        if size < (256 << 10) or seconds <= 0:
            return  # too small to say anything about bandwidth
        rate = size / seconds
        previous = self.bandwidth.get(peer)
        self.bandwidth[peer] = rate if previous is None else 0.7 * previous + 0.3 * rate

    def _parse(self, frames: list[bytes], batch: list[CID], provider: str) -> tuple[list[VerifiedBlock], list[CID]]:
        """Check a reply against the request and hash each block (the only time it is hashed here).

        Returns the verified blocks and the links they carry (so the walk goes on while
        the blocks are still waiting to be written).
        """
        wanted = set(batch)
        blocks: list[VerifiedBlock] = []
        links: list[CID] = []
        for item in frames:
            try:
                length, pos = decode_uvarint(item, 1)
                cid = CID(item[pos : pos + length])
            except (StorageError, IndexError):
                raise _BadProvider("malformed reply frame") from None
            if cid not in wanted:
                raise _BadProvider(f"sent {cid}, which was not asked for")
            if item[0] != 1:
                raise _BadProvider(f"does not have {cid}")
            try:
                block = verify_block(cid, item[pos + length :])
            except BlockVerificationError:
                self.metrics.inc("blocks_rejected_total")
                raise _BadProvider(f"sent a block that does not hash to {cid}") from None
            except StorageError as exc:
                raise _BadProvider(str(exc)) from None
            blocks.append(block)
            if has_links(cid):
                links.extend(links_of(cid, block.data))
            wanted.discard(cid)
        if wanted:
            raise _BadProvider(f"left {len(wanted)} wanted block(s) unanswered")
        return blocks, links


def _links_of_blocks(blocks: list[VerifiedBlock]) -> list[CID]:
    links: list[CID] = []
    for block in blocks:
        if has_links(block.cid):
            links.extend(links_of(block.cid, block.data))
    return links


class FallbackSource(Protocol):
    """Blocks from peers that do not speak /mycel/blocks (:class:`node.ipfs.bitswap_client.BitswapClient`)."""

    async def has(self, peer: str, cid: CID) -> bool:
        """Whether ``peer`` says it holds ``cid``."""

    async def get_blocks(self, peer: str, cids: Sequence[CID]) -> list[VerifiedBlock]:
        """The blocks, each verified against its CID; raises NetworkError when the peer cannot supply them."""


class BulkSource(Protocol):
    """Whole DAGs in one stream from providers that offer it (:class:`node.bulk.client.BulkClient`)."""

    def offers(self, peer: str) -> bool:
        """Whether ``peer`` announced the bulk path (no question asked of it)."""

    def blocks(self, peer: str, root: CID) -> AsyncGenerator[list[VerifiedBlock], None]:
        """The DAG under ``root`` in order, each block verified; raises :class:`SourceRefused` for a
        stream that breaks the rules, NetworkError when it cannot go on."""


class SourceRefused(NetworkError):
    """A provider's stream broke the rules (a block out of order, corrupted, unasked): drop the provider."""


class ExchangeGate(Protocol):
    """The privacy rules the exchange applies (:class:`node.privacy.gate.ServingGate`); all run in store threads."""

    def may_send(self, peer: str, cid: CID) -> bool:
        """Whether ``cid`` may go to ``peer``."""

    def policy_for(self, root: CID) -> bytes | None:
        """The signed policy to send with a ``have`` for ``root``, when it is a private dataset."""

    def learn_policy(self, root: CID, record: bytes) -> None:
        """Keep a policy a holder of ``root`` sent (refused unless it is a valid one for ``root``)."""

    def before_store(self, root: CID, blocks: list[CID]) -> None:
        """Called before blocks fetched for ``root`` are written: a private replica indexes them first."""


class _Open:
    """No private data: everything may go, nothing to learn."""

    def may_send(self, peer: str, cid: CID) -> bool:
        return True

    def policy_for(self, root: CID) -> bytes | None:
        return None

    def learn_policy(self, root: CID, record: bytes) -> None:
        return None

    def before_store(self, root: CID, blocks: list[CID]) -> None:
        return None


class NotFoundOnNetwork(NetworkError):
    """No connected peer holds the root CID."""


class FetchTooLarge(Exception):
    """A bounded fetch would have received more than its byte limit; nothing past it was stored."""

    def __init__(self, root: CID, limit: int) -> None:
        super().__init__(f"{root} is larger than the {limit} bytes one request may fetch from peers")
        self.root = root
        self.limit = limit


class _BadProvider(Exception):
    pass


class _PeerBudget:
    """Requests of one peer being served (``running``) and admitted in all (running or waiting)."""

    def __init__(self) -> None:
        self.running = asyncio.Semaphore(MAX_SERVING_PER_PEER)
        self.admitted = 0


def _close_session(opening: asyncio.Future[ImportSession]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


async def _put_or_fail(
    store_queue: asyncio.Queue[list[VerifiedBlock]], blocks: list[VerifiedBlock], writer: asyncio.Future[None]
) -> None:
    """Queue ``blocks`` for the writer; if the writer has failed (quota, disk), raise its error instead."""
    putting = asyncio.ensure_future(store_queue.put(blocks))
    try:
        await asyncio.wait({putting, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not putting.done():
            putting.cancel()
    error = writer.exception() if writer.done() else None
    if error is not None:
        raise error
