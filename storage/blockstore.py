"""The block store: content-addressed blocks in LMDB, verified on the way in and out.

Layout of the LMDB environment (one directory):

* ``blocks``: CID bytes -> block bytes
* ``sizes``:  CID bytes -> block size (u64); presence checks, walks and GC read this
  small index, because py-lmdb faults in every page of a value it looks up, and
  touching 256 KiB per block just to learn that it exists would map the whole store
* ``pins``:   CID bytes -> dag-cbor pin record (recursive pins only); a pin made for a
  remote peer carries a lease (``expires``, ``owner``, see :mod:`storage.leases`), and
  GC drops it, and every block only it reached, once it has expired
* ``meta``:   store-wide counters kept in the same transactions as the blocks they
  count, so size accounting can never drift, even after a crash.

Crash safety comes from LMDB: a transaction is all or nothing, so a process killed in
the middle of an import leaves whole blocks from committed batches and no pin (pins are
written only after an import completes). Those orphans are unpinned and GC frees them.

Imports and GC exclude each other with an ``flock`` on ``gc.lock`` (shared for
imports, exclusive for GC), which also works across processes and is released by the
kernel if a holder dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import lmdb

from storage import dagcbor
from storage.cid import CID, RAW, SHA2_256, SHA2_512
from storage.dag import has_links, walk
from storage.errors import (
    BlockNotFoundError,
    BlockVerificationError,
    IncompleteDAGError,
    PinQuotaExceededError,
    QuotaExceededError,
    StorageError,
)
from storage.leases import PinLease
from storage.lmdbenv import GatedEnv

log = logging.getLogger("mycelnet.storage")

DEFAULT_MAP_SIZE = 1 << 30
DEFAULT_BATCH_BYTES = 32 << 20
MAX_BLOCK_SIZE = 4 << 20

_COUNT_KEY = b"blocks"
_BYTES_KEY = b"bytes"
_U64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class StoreStats:
    blocks: int
    bytes: int
    quota: int | None
    map_size: int
    pins: int


@dataclass(frozen=True, slots=True)
class Pin:
    """A pinned root. ``expires`` (Unix seconds) and ``owner`` are set only for a pin held for a
    remote peer; None means permanent."""

    cid: CID
    name: str
    created: int
    expires: int | None = None
    owner: str = ""
    size: int | None = None


@dataclass(frozen=True, slots=True)
class GCResult:
    removed_blocks: int
    freed_bytes: int
    kept_blocks: int
    expired_pins: int = 0


_MINT = object()  # only verify_block holds it: a VerifiedBlock cannot be made without hashing


class VerifiedBlock:
    """A block whose bytes were hashed against its CID exactly once (by :func:`verify_block`).

    The one proof :meth:`BlockStore.put_verified` accepts, so a block that arrives from a
    peer is hashed on arrival, before it is counted or stored, and never again on the way
    into LMDB (the exchange used to pay for sha256 twice per received block).
    """

    __slots__ = ("cid", "data")

    def __init__(self, cid: CID, data: bytes, mint: object) -> None:
        if mint is not _MINT:
            raise TypeError("a VerifiedBlock comes from verify_block() only")
        self.cid = cid
        self.data = data


def verify_block(cid: CID, data: bytes) -> VerifiedBlock:
    """Hash ``data`` against ``cid`` (once); raises :class:`BlockVerificationError` on a mismatch."""
    if len(data) > MAX_BLOCK_SIZE:
        raise StorageError(f"block {cid} is {_human(len(data))}, over the {_human(MAX_BLOCK_SIZE)} block limit")
    if not cid.matches(data):
        raise BlockVerificationError(cid, "offered bytes do not hash to this CID; nothing was written")
    return VerifiedBlock(cid, bytes(data), _MINT)


def identify_block(data: bytes, hash_code: int, candidates: Mapping[bytes, CID]) -> VerifiedBlock | None:
    """Hash ``data`` once with ``hash_code``; the block verified as the candidate with that digest, or None.

    For a receiver that knows only which CIDs it waits for, not which one some bytes are
    (Bitswap names a CID prefix, not the CID): one hash both finds and proves the CID, where
    computing the CID and then calling :func:`verify_block` would hash the block twice.
    ``candidates`` maps digests to the CIDs waited for, all of that hash function.
    """
    if len(data) > MAX_BLOCK_SIZE:
        raise StorageError(f"a block of {_human(len(data))} is over the {_human(MAX_BLOCK_SIZE)} block limit")
    hasher = _IDENTIFY_HASHERS.get(hash_code)
    if hasher is None:
        return None
    cid = candidates.get(hasher(data).digest())
    if cid is None or cid.hash_code != hash_code:
        return None
    return VerifiedBlock(cid, bytes(data), _MINT)


_IDENTIFY_HASHERS = {SHA2_256: hashlib.sha256, SHA2_512: hashlib.sha512}


class BlockStore:
    """Verified content-addressed storage in one LMDB environment.

    Thread-safe for concurrent use by one process's threads; several processes may
    open the same directory (LMDB serialises their writers).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        quota: int | None = None,
        map_size: int = DEFAULT_MAP_SIZE,
        sync: bool = True,
        verify_on_get: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.clock = clock  # Unix seconds: pin creation times and lease expiry
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create store directory {self.path}: {exc.strerror}") from None
        self.quota = quota
        self.verify_on_get = verify_on_get
        self.corrupt_blocks_seen = 0
        # pin-table writes by this process: what is summarized from the pins (a node's announced
        # holdings) is rebuilt only when this moved, not rescanned at every announcement
        self.pin_writes = 0
        self._write_lock = threading.RLock()
        try:
            self._lmdb = GatedEnv(
                self.path,
                map_size=map_size,
                max_dbs=4,
                sync=sync,
                metasync=sync,
                readahead=False,
                max_spare_txns=4,
            )
        except lmdb.Error as exc:
            raise StorageError(f"cannot open block store at {self.path}: {exc}") from None
        self._env = self._lmdb.env  # open_db only: every transaction goes through self._lmdb
        self._blocks = self._env.open_db(b"blocks")
        self._sizes = self._env.open_db(b"sizes")
        self._pins = self._env.open_db(b"pins")
        self._meta = self._env.open_db(b"meta")
        self._lock_path = self.path / "gc.lock"

    # -- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        self._lmdb.close()

    def __enter__(self) -> BlockStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blocks ------------------------------------------------------------------
    def put(self, cid: CID, data: bytes) -> bool:
        """Store one block after checking that ``data`` hashes to ``cid``.

        Returns False when the block was already present. A mismatch raises
        :class:`BlockVerificationError` and writes nothing.
        """
        with self.batch() as batch:
            batch.put_block(cid, data)
        return batch.added_blocks == 1

    def put_many(self, blocks: Iterable[tuple[CID, bytes]]) -> int:
        """Verify and store many blocks in as few transactions as possible."""
        with self.batch() as batch:
            for cid, data in blocks:
                batch.put_block(cid, data)
        return batch.added_blocks

    def put_verified(self, blocks: Iterable[VerifiedBlock]) -> int:
        """Store blocks :func:`verify_block` has checked, without hashing them again (one transaction).

        Returns how many were new. Quotas apply as for :meth:`put_many`.
        """
        pending = []
        for block in blocks:
            if not isinstance(block, VerifiedBlock):
                raise TypeError(f"put_verified takes VerifiedBlock, not {type(block).__name__}")
            pending.append((bytes(block.cid), block.data))
        return self._commit(pending) if pending else 0

    def batch(self, *, trusted: bool = False, batch_bytes: int = DEFAULT_BATCH_BYTES) -> WriteBatch:
        """A write batch (also a UnixFS :class:`~storage.unixfs.importer.BlockSink`).

        ``trusted`` skips re-hashing for blocks whose CID the caller has just computed
        from these very bytes (the importer); everything from outside is verified.
        """
        return WriteBatch(self, trusted=trusted, batch_bytes=batch_bytes)

    def get(self, cid: CID, *, verify: bool | None = None) -> bytes:
        """Return a block's bytes; a block that fails verification is never returned."""
        with self._lmdb.read(self._blocks, buffers=True) as txn:
            view = txn.get(bytes(cid))
            if view is None:
                raise BlockNotFoundError(cid)
            data = bytes(view)
        if verify if verify is not None else self.verify_on_get:
            self._check(cid, data)
        return data

    def get_size(self, cid: CID) -> int | None:
        with self._lmdb.read(self._sizes) as txn:
            value = txn.get(bytes(cid))
            return None if value is None else int(_U64.unpack(value)[0])

    def has(self, cid: CID) -> bool:
        with self._lmdb.read(self._sizes) as txn:
            return txn.get(bytes(cid)) is not None

    def delete(self, cid: CID) -> bool:
        with self._write_lock, self._lmdb.write() as txn:
            return self._delete_in(txn, bytes(cid))

    def cids(self) -> Iterator[CID]:
        """Every stored CID, in byte order (a snapshot taken when iteration starts)."""
        with self._lmdb.read(self._sizes) as txn:
            keys = list(txn.cursor().iternext(keys=True, values=False))
        for key in keys:
            yield CID(key)

    def stats(self) -> StoreStats:
        with self._lmdb.read() as txn:
            count, size = self._counters(txn)
            pins = txn.stat(self._pins)["entries"]
        return StoreStats(count, size, self.quota, self._lmdb.map_size(), pins)

    def verify_all(self) -> Iterator[tuple[CID, str]]:
        """Re-hash every block; yields ``(cid, problem)`` for each one that fails."""
        for cid in self.cids():
            try:
                self.get(cid, verify=True)
            except BlockNotFoundError:
                continue  # deleted while we looked
            except BlockVerificationError as exc:
                yield cid, str(exc)

    # -- DAGs and pins -------------------------------------------------------------
    def walk(self, root: CID, *, verify: bool | None = None) -> Iterator[tuple[CID, bytes]]:
        """Every block of a DAG, depth-first pre-order; raises if one is missing."""
        for cid, data in walk(root, lambda c: self._get_or_none(c, verify)):
            if data is None:
                raise IncompleteDAGError(root, cid)
            yield cid, data

    def missing_blocks(self, root: CID) -> list[CID]:
        """Blocks of the DAG under ``root`` that are not stored (empty when complete)."""
        missing: list[CID] = []
        with self._lmdb.read() as txn:
            for _present in self._reachable_in(txn, root, missing):
                continue
        return missing

    def complete_dag_size(self, root: CID) -> int | None:
        """Bytes of the DAG under ``root`` if every block is stored, else None.

        A pinned DAG answers from the size recorded when it was pinned (pins are only
        written for complete DAGs and GC keeps their blocks), so ``have`` probes from
        peers cost one lookup; anything else is walked over the size index.
        """
        recorded = self.pinned_size(root)
        if recorded is not None:
            return recorded
        with self._lmdb.read() as txn:
            return self._complete_size_in(txn, root)

    def pinned_size(self, root: CID) -> int | None:
        """The DAG size recorded in ``root``'s pin, or None (not pinned, or pinned before sizes were kept)."""
        with self._lmdb.read(self._pins) as txn:
            raw = txn.get(bytes(root))
        if raw is None:
            return None
        size = dagcbor.decode(raw).get("size")
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    def pin(self, root: CID, name: str = "", *, lease: PinLease | None = None) -> Pin:
        """Pin a complete DAG recursively so GC keeps every block of it.

        Completeness is checked and the pin written in one write transaction: no GC,
        in this process or another, can delete a block between the check and the pin.
        The DAG's size is recorded in the pin so later ``have`` probes need no walk.

        With a ``lease`` the pin is held for a remote peer and expires. A lease never
        weakens a permanent pin of the same root (that one is kept as it is), a
        permanent pin replaces a leased one, and of two leases the later expiry wins.
        The lease's quota is checked in the same transaction, so concurrent pins for
        one peer cannot together overrun it (:class:`PinQuotaExceededError`).
        """
        with self._write_lock:
            pinned: Pin = self._lmdb.write_growing(lambda txn: self._pin_in(txn, root, name, lease))
            self.pin_writes += 1
        return pinned

    def _pin_in(self, txn: Any, root: CID, name: str, lease: PinLease | None) -> Pin:
        """:meth:`pin` inside the write transaction ``txn`` (the caller holds the write lock)."""
        created = int(self.clock())
        size = self._complete_size_in(txn, root)
        if size is None:
            missing: list[CID] = []
            for _present in self._reachable_in(txn, root, missing):
                continue
            raise IncompleteDAGError(root, missing[0] if missing else root)
        existing = txn.get(bytes(root), db=self._pins)
        current = None if existing is None else _pin_from(root, dagcbor.decode(existing))
        record: dict[str, Any] = {"name": name, "created": created, "recursive": True, "size": size}
        if lease is None and current is not None and current.expires is None:
            record["created"] = current.created  # permanent since then (lease_pin relies on it)
        if lease is not None:
            if current is not None and current.expires is None:
                return current  # already permanent: a remote peer's lease cannot weaken it
            if lease.quota is not None:
                held = self._held_in(txn, lease.owner, created, excluding=bytes(root))
                if held + size > lease.quota:
                    raise PinQuotaExceededError(lease.owner, held, size, lease.quota)
            expires = (
                lease.expires if current is None or current.expires is None else max(lease.expires, current.expires)
            )
            record.update(expires=expires, owner=lease.owner)
        txn.put(bytes(root), dagcbor.encode(record), db=self._pins)
        return _pin_from(root, record)

    def lease_pin(self, root: CID, name: str, lease: PinLease, since: int) -> bool:
        """Turn the permanent pin named ``name`` on ``root``, made at ``since`` or later, into a leased one.

        For a pin that code outside the job protocol wrote permanently (a job's result,
        stored by the executor) on behalf of a remote peer. Compare-and-set in one
        transaction: if the pin is gone, leased already, renamed (the operator pinned the
        same root meanwhile) or permanent from before ``since`` (the operator had pinned the
        same bytes already; a re-pin keeps the first time), it is left alone and False
        returned. No quota check: the bytes are stored already; they count from now on.
        """

        def write(txn: Any) -> bool:
            existing = txn.get(bytes(root), db=self._pins)
            if existing is None:
                return False
            record = dagcbor.decode(existing)
            if not isinstance(record, dict) or "expires" in record or record.get("name") != name:
                return False
            created = record.get("created")
            if not isinstance(created, int) or created < since:
                return False
            record.update(expires=lease.expires, owner=lease.owner)
            txn.put(bytes(root), dagcbor.encode(record), db=self._pins)
            return True

        with self._write_lock:
            changed: bool = self._lmdb.write_growing(write)
            self.pin_writes += 1
        return changed

    def held_for(self, owner: str) -> int:
        """Bytes of the unexpired pins held for ``owner`` (reads the pin table only, not blocks)."""
        return self.holding(owner)[0]

    def holding(self, owner: str) -> tuple[int, int | None]:
        """(bytes of the unexpired pins held for ``owner``, when the first of them expires: None
        for none): until that time, or the next pin write, the count cannot change."""
        with self._lmdb.read() as txn:
            return self._holding_in(txn, owner, int(self.clock()))

    def unpin(self, root: CID) -> bool:
        with self._write_lock:
            with self._lmdb.write(self._pins) as txn:
                deleted = bool(txn.delete(bytes(root)))
            self.pin_writes += 1
            return deleted

    def pins(self) -> list[Pin]:
        with self._lmdb.read(self._pins) as txn:
            items = list(txn.cursor().iternext())
        return [_pin_from(CID(key), dagcbor.decode(value)) for key, value in items]

    def pin_of(self, root: CID) -> Pin | None:
        """``root``'s pin as stored (one read), or None when it is not pinned."""
        with self._lmdb.read(self._pins) as txn:
            raw = txn.get(bytes(root))
        return None if raw is None else _pin_from(root, dagcbor.decode(raw))

    def is_pinned(self, root: CID) -> bool:
        with self._lmdb.read(self._pins, buffers=True) as txn:
            return txn.get(bytes(root)) is not None

    def gc(self, *, wait: bool = True, then: Callable[[], object] | None = None) -> GCResult:
        """Drop expired leased pins, then delete every block not reachable from a pin.

        Waits for running imports (their blocks are not pinned yet) unless ``wait`` is
        False, in which case a busy store raises StorageError. ``then`` runs after the sweep,
        still under the GC lock (no import can index and write blocks meanwhile): indexes kept
        beside the store (the private-block index) drop what was deleted there.
        """
        with self._gc_lock(exclusive=True, wait=wait):
            with self._write_lock:
                result = self._lmdb.write_growing(self._sweep)
                self.pin_writes += 1  # expired leases were dropped
            if then is not None:
                then()
            return result

    def _sweep(self, txn: Any) -> GCResult:
        """Mark from every pin and delete the rest in one write transaction.

        One transaction, so a pin written concurrently (LMDB serialises writers, across
        processes too) is either seen here and kept, or sees the deletions and refuses.
        """
        now = int(self.clock())
        keep: set[bytes] = set()
        expired: list[bytes] = []
        for key, value in list(txn.cursor(db=self._pins).iternext(keys=True, values=True)):
            expires = _pin_from(CID(key), dagcbor.decode(value)).expires
            if expires is not None and expires <= now:
                expired.append(key)
                continue
            keep.update(bytes(cid) for cid in self._reachable_in(txn, CID(key), []))
        for key in expired:
            txn.delete(key, db=self._pins)
        cursor = txn.cursor(db=self._sizes)
        doomed = [
            (key, _U64.unpack(value)[0]) for key, value in cursor.iternext(keys=True, values=True) if key not in keep
        ]
        removed = freed = 0
        for key, size in doomed:
            txn.delete(key, db=self._blocks)
            txn.delete(key, db=self._sizes)
            removed += 1
            freed += size
        count, size = self._counters(txn)
        self._set_counters(txn, count - removed, size - freed)
        return GCResult(removed, freed, count - removed, len(expired))

    @contextmanager
    def import_session(self) -> Iterator[None]:
        """Hold off GC while blocks are written that will only be pinned at the end."""
        session = self.open_import_session()
        try:
            yield
        finally:
            session.close()

    def open_import_session(self) -> ImportSession:
        """An import session to close later, for callers that cannot use ``with`` across awaits.

        Blocks while a GC runs (in any process): an event loop calls this in a thread.
        """
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        return ImportSession(fd)

    # -- internals -----------------------------------------------------------------
    def _check(self, cid: CID, data: bytes) -> None:
        if not cid.matches(data):
            self.corrupt_blocks_seen += 1
            log.error("corrupt block %s in %s: content does not match its hash", cid, self.path)
            raise BlockVerificationError(cid, "stored bytes do not match the CID (corrupted on disk)")

    def _get_or_none(self, cid: CID, verify: bool | None) -> bytes | None:
        try:
            return self.get(cid, verify=verify)
        except BlockNotFoundError:
            return None

    def _reachable(self, root: CID, missing: list[CID]) -> list[CID]:
        """CIDs reachable from ``root`` that are present (one snapshot); absent ones go to ``missing``."""
        with self._lmdb.read() as txn:
            return list(self._reachable_in(txn, root, missing))

    def _complete_size_in(self, txn: Any, root: CID) -> int | None:
        """Total bytes of the DAG under ``root`` as ``txn`` sees it, None at the first missing block."""
        total = 0
        for _cid, size in self._sized_walk(txn, root):
            if size is None:
                return None
            total += size
        return total

    def _reachable_in(self, txn: Any, root: CID, missing: list[CID]) -> Iterator[CID]:
        for cid, size in self._sized_walk(txn, root):
            if size is None:
                missing.append(cid)
            else:
                yield cid

    def _sized_walk(self, txn: Any, root: CID) -> Iterator[tuple[CID, int | None]]:
        """Every CID reachable from ``root`` in ``txn`` with its stored size (None when absent).

        Blocks that cannot link (raw) are checked in the size index only, so walking a
        large file reads just its few interior nodes.
        """
        found: int | None = None

        def load(cid: CID) -> bytes | None:
            nonlocal found
            key = bytes(cid)
            size = txn.get(key, db=self._sizes)
            if size is None:
                found = None
                return None
            found = _U64.unpack(size)[0]
            if not has_links(cid):
                return b""  # present; its bytes are not needed to walk on
            data: bytes | None = txn.get(key, db=self._blocks)
            return data

        for cid, _data in walk(root, load):
            yield cid, found

    def _held_in(self, txn: Any, owner: str, now: int, excluding: bytes = b"") -> int:
        """Bytes of the unexpired pins held for ``owner`` as ``txn`` sees them."""
        return self._holding_in(txn, owner, now, excluding)[0]

    def _holding_in(self, txn: Any, owner: str, now: int, excluding: bytes = b"") -> tuple[int, int | None]:
        held, first = 0, None
        for key, value in txn.cursor(db=self._pins).iternext(keys=True, values=True):
            if key == excluding:
                continue
            pin = _pin_from(CID(key), dagcbor.decode(value))
            if pin.owner == owner and pin.expires is not None and pin.expires > now:
                held += pin.size or 0
                first = pin.expires if first is None else min(first, pin.expires)
        return held, first

    def _counters(self, txn: Any) -> tuple[int, int]:
        count = txn.get(_COUNT_KEY, db=self._meta)
        size = txn.get(_BYTES_KEY, db=self._meta)
        return (
            _U64.unpack(count)[0] if count is not None else 0,
            _U64.unpack(size)[0] if size is not None else 0,
        )

    def _set_counters(self, txn: Any, count: int, size: int) -> None:
        txn.put(_COUNT_KEY, _U64.pack(count), db=self._meta)
        txn.put(_BYTES_KEY, _U64.pack(size), db=self._meta)

    def _delete_in(self, txn: Any, key: bytes) -> bool:
        value = txn.get(key, db=self._sizes)
        if value is None:
            return False
        txn.delete(key, db=self._blocks)
        txn.delete(key, db=self._sizes)
        count, size = self._counters(txn)
        self._set_counters(txn, count - 1, size - _U64.unpack(value)[0])
        return True

    def _commit(self, pending: list[tuple[bytes, bytes]]) -> int:
        """Write a batch in one transaction, growing the map when LMDB says it is full."""
        with self._write_lock:
            return self._lmdb.write_growing(lambda txn: self._commit_in(txn, pending))

    def _commit_in(self, txn: Any, pending: list[tuple[bytes, bytes]]) -> int:
        count, size = self._counters(txn)
        added = 0
        added_bytes = 0
        put = txn.put
        blocks, sizes, pack = self._blocks, self._sizes, _U64.pack
        for key, data in pending:
            if put(key, data, db=blocks, overwrite=False):
                put(key, pack(len(data)), db=sizes)
                added += 1
                added_bytes += len(data)
        if self.quota is not None and size + added_bytes > self.quota:
            raise QuotaExceededError(
                f"store quota exceeded: {_human(size)} used of {_human(self.quota)}, and this write "
                f"needs {_human(added_bytes)} more; free space with `mycel gc` or raise the quota"
            )
        self._set_counters(txn, count + added, size + added_bytes)
        return added

    @contextmanager
    def _gc_lock(self, *, exclusive: bool, wait: bool) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            try:
                fcntl.flock(fd, flags if wait else flags | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError("the store is busy (an import is running); try `mycel gc` again later") from None
            yield
        finally:
            os.close(fd)  # closing releases the lock


class ImportSession:
    """A held shared lock on ``gc.lock``: GC (in any process) waits until it is closed.

    The lock belongs to this open file description, so it may be taken in one thread
    and released in another (an executor thread and the event loop).
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def __enter__(self) -> ImportSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteBatch:
    """Collects blocks and commits them in transactions of about ``batch_bytes``.

    Use as a context manager: leaving normally commits the rest, leaving by an
    exception discards what was not yet committed.
    """

    def __init__(self, store: BlockStore, *, trusted: bool, batch_bytes: int) -> None:
        self._store = store
        self._trusted = trusted
        self._batch_bytes = batch_bytes
        self._pending: list[tuple[bytes, bytes]] = []
        self._pending_bytes = 0
        self.added_blocks = 0

    def put_block(self, cid: CID, data: bytes) -> None:
        if len(data) > MAX_BLOCK_SIZE:
            raise StorageError(f"block {cid} is {_human(len(data))}, over the {_human(MAX_BLOCK_SIZE)} block limit")
        if not self._trusted and not cid.matches(data):
            raise BlockVerificationError(cid, "offered bytes do not hash to this CID; nothing was written")
        self._pending.append((bytes(cid), bytes(data)))
        self._pending_bytes += len(data)
        if self._pending_bytes >= self._batch_bytes:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.added_blocks += self._store._commit(self._pending)
            self._pending = []
            self._pending_bytes = 0

    def commit_pinned(self, root: CID, name: str = "", lease: PinLease | None = None) -> Pin:
        """Commit what is pending and pin ``root`` in the same transaction (as :meth:`BlockStore.pin`).

        One synced commit instead of two for an import that ends with its pin (a job's result,
        ``mycel put``): the pin is still the commit point, and now lands with the last blocks.
        With a ``lease`` the pin is held for that peer (a remote requester's result) as
        :meth:`BlockStore.pin` would hold it, without the quota check (as :meth:`BlockStore.lease_pin`:
        the bytes are stored already, and an executor's result must not fail after its run).
        """
        store = self._store
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        held = None if lease is None else replace(lease, quota=None)

        def write(txn: Any) -> tuple[int, Pin]:
            return store._commit_in(txn, pending), store._pin_in(txn, root, name, held)

        with store._write_lock:
            added, pinned = store._lmdb.write_growing(write)
            store.pin_writes += 1
        self.added_blocks += added
        return pinned

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.flush()
        else:
            self._pending = []


def _pin_from(cid: CID, record: Any) -> Pin:
    """A pin record as stored (fields checked: records written by older versions lack some)."""
    if not isinstance(record, dict):
        return Pin(cid, "", 0)

    def integer(key: str) -> int | None:
        value = record.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    owner = record.get("owner")
    return Pin(
        cid,
        str(record.get("name", "")),
        integer("created") or 0,
        integer("expires"),
        owner if isinstance(owner, str) else "",
        integer("size"),
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


__all__ = [
    "RAW",
    "BlockStore",
    "GCResult",
    "ImportSession",
    "Pin",
    "StoreStats",
    "VerifiedBlock",
    "WriteBatch",
    "verify_block",
]
