"""Streams in LMDB: the entries (exact signed bytes), each stream's head and settings, fork evidence.

Tables, keyed by stream id: ``meta`` (a :class:`StreamInfo` record), ``entries`` (key
``stream/seq`` as 8 big-endian bytes, so a cursor walks a stream in seq order; value the
signed envelope), ``forks`` (the two conflicting entries), ``subs`` (streams this node
replicates, and from which peer), ``compacting`` (entries retention took out of the live log,
moved there in the same transaction, until a snapshot holds them) and ``snapshots`` (key
``stream/last seq``: the CID and first seq of each snapshot, see :mod:`node.streams.compaction`)
and ``policies`` (the writer-signed policy of a stream, :mod:`node.streams.policy`).
A batch is checked against the chain rule as a whole
and written in one transaction: it lands entirely or not at all. Every method here is
blocking and runs off the event loop (the service calls them through ``to_thread``).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.streams.model import Refusal, Retention, StreamInfo, StreamRefused, check_next
from storage import dagcbor
from storage.cid import CID
from storage.lmdbenv import GatedEnv
from storage.streamentry import Entry

MAX_LIST = 1000


def _key(stream: str, seq: int) -> bytes:
    return stream.encode() + b"/" + seq.to_bytes(8, "big")


class StreamStore:
    def __init__(self, path: Path, map_size: int = 16 << 20) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._lmdb = GatedEnv(path, map_size=map_size, max_dbs=8)
        env = self._lmdb.env
        self._meta = env.open_db(b"stream_meta")
        self._entries = env.open_db(b"stream_entries")
        self._forks = env.open_db(b"stream_forks")
        self._subs = env.open_db(b"stream_subs")
        self._compacting = env.open_db(b"stream_compacting")
        self._snapshots = env.open_db(b"stream_snapshots")
        self._policies = env.open_db(b"stream_policies")
        self._snapshot_of = env.open_db(b"stream_snapshot_of")  # snapshot CID -> its stream (the serving check)
        with self._lmdb.read(self._snapshot_of) as txn:  # while none is held, the check is free
            self.holds_snapshots = txn.stat(self._snapshot_of)["entries"] > 0

    def close(self) -> None:
        self._lmdb.close()

    # -- reads -----------------------------------------------------------------------
    def info(self, stream: str) -> StreamInfo | None:
        with self._lmdb.read(self._meta) as txn:
            raw = txn.get(stream.encode())
        return None if raw is None else StreamInfo.from_record(dagcbor.decode(raw))

    def streams(self, limit: int = MAX_LIST) -> list[StreamInfo]:
        with self._lmdb.read(self._meta) as txn:
            raws = [bytes(value) for _, value in itertools.islice(txn.cursor(), limit)]
        return [StreamInfo.from_record(dagcbor.decode(raw)) for raw in raws]

    def since(self, stream: str, after: int, limit: int) -> list[bytes]:
        """The signed entries of ``stream`` with seq > ``after``, oldest first, at most ``limit``."""
        prefix = stream.encode() + b"/"
        found: list[bytes] = []
        with self._lmdb.read(self._entries) as txn:
            cursor = txn.cursor()
            ok = cursor.set_range(_key(stream, after + 1))
            while ok and len(found) < limit and cursor.key().startswith(prefix):
                found.append(bytes(cursor.value()))
                ok = cursor.next()
        return found

    def forks(self, stream: str) -> list[dict[str, Any]]:
        with self._lmdb.read(self._forks) as txn:
            raw = txn.get(stream.encode())
        evidence: list[dict[str, Any]] = dagcbor.decode(raw) if raw is not None else []
        return evidence

    def subscriptions(self) -> dict[str, str]:
        """stream id -> the peer it is replicated from."""
        with self._lmdb.read(self._subs) as txn:
            return {bytes(key).decode(): bytes(value).decode() for key, value in txn.cursor()}

    def policy(self, stream: str) -> bytes | None:
        """The signed policy record held for ``stream`` (verified before it was stored), or None."""
        with self._lmdb.read(self._policies) as txn:
            raw = txn.get(stream.encode())
        return None if raw is None else bytes(raw)

    def put_policy(self, stream: str, data: bytes, replaces: Any) -> bool:
        """Store ``data`` as ``stream``'s policy if ``replaces(held bytes or None)`` says so, in one
        transaction (two policies arriving at once cannot both win); returns whether it was stored."""

        def change(txn: Any) -> bool:
            held = txn.get(stream.encode(), db=self._policies)
            if not replaces(None if held is None else bytes(held)):
                return False
            txn.put(stream.encode(), data, db=self._policies)
            return True

        stored: bool = self._lmdb.write_growing(change)
        return stored

    # -- compaction ------------------------------------------------------------------
    def compacting(self, stream: str, max_bytes: int, max_entries: int) -> list[tuple[int, bytes]]:
        """Entries retention took out of ``stream``'s live log that no snapshot holds yet, oldest
        first, within ``max_bytes`` (at least one) and ``max_entries``."""
        prefix = stream.encode() + b"/"
        found: list[tuple[int, bytes]] = []
        size = 0
        with self._lmdb.read(self._compacting) as txn:
            cursor = txn.cursor()
            ok = cursor.set_range(prefix)
            while ok and cursor.key().startswith(prefix) and len(found) < max_entries:
                raw = bytes(cursor.value())
                if found and size + len(raw) > max_bytes:
                    break
                found.append((int.from_bytes(cursor.key()[len(prefix) :], "big"), raw))
                size += len(raw)
                ok = cursor.next()
        return found

    def compacting_streams(self) -> list[str]:
        """Streams with entries waiting for a snapshot (after a restart)."""
        streams: list[str] = []
        with self._lmdb.read(self._compacting) as txn:
            cursor = txn.cursor()
            ok = cursor.first()
            while ok:
                stream = bytes(cursor.key()).rsplit(b"/", 1)[0].decode()
                streams.append(stream)
                ok = cursor.set_range(stream.encode() + b"0")  # past every "stream/seq" key
        return streams

    def compacted(self, stream: str, first: int, last: int, snapshot: CID) -> StreamInfo | None:
        """Entries ``first..last`` are in ``snapshot`` (pinned): drop them, record it, all at once."""

        def change(txn: Any) -> StreamInfo | None:
            for seq in range(first, last + 1):
                txn.delete(_key(stream, seq), db=self._compacting)
            txn.put(_key(stream, last), dagcbor.encode({"cid": snapshot, "first": first}), db=self._snapshots)
            txn.put(bytes(snapshot), stream.encode(), db=self._snapshot_of)
            raw = txn.get(stream.encode(), db=self._meta)
            if raw is None:
                return None
            info = _replace(StreamInfo.from_record(dagcbor.decode(raw)), snapshot=snapshot, snapshot_seq=last)
            txn.put(stream.encode(), dagcbor.encode(info.record()), db=self._meta)
            return info

        self.holds_snapshots = True  # before the write: a concurrent serve must not miss it
        result: StreamInfo | None = self._lmdb.write_growing(change)
        return result

    def snapshot_stream(self, cid: CID) -> str | None:
        """The stream whose compacted entries block ``cid`` holds, or None (not a snapshot)."""
        if not self.holds_snapshots:
            return None
        with self._lmdb.read(self._snapshot_of) as txn:
            raw = txn.get(bytes(cid))
        return None if raw is None else bytes(raw).decode()

    def snapshot_for(self, stream: str, seq: int) -> tuple[CID, int, int] | None:
        """The snapshot holding entry ``seq`` of ``stream``: (CID, first seq, last seq), or None."""
        prefix = stream.encode() + b"/"
        with self._lmdb.read(self._snapshots) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(_key(stream, seq)) or not cursor.key().startswith(prefix):
                return None
            last = int.from_bytes(cursor.key()[len(prefix) :], "big")
            record = dagcbor.decode(bytes(cursor.value()))
        return (record["cid"], record["first"], last) if record["first"] <= seq else None

    # -- writes ----------------------------------------------------------------------
    def subscribe(self, stream: str, source: str) -> None:
        with self._lmdb.read(self._subs) as txn:
            held = txn.get(stream.encode())
        if held is not None and bytes(held) == source.encode():
            return  # already so: no write transaction (and no fsync) for a repeated subscribe
        self._lmdb.write_growing(lambda txn: txn.put(stream.encode(), source.encode(), db=self._subs))

    def set_retention(self, stream: str, retention: Retention) -> StreamInfo:
        def change(txn: Any) -> StreamInfo:
            raw = txn.get(stream.encode(), db=self._meta)
            if raw is None:
                raise StreamRefused(Refusal.NOT_FOUND, f"no stream {stream} on this node")
            info = StreamInfo.from_record(dagcbor.decode(raw))
            info = _replace(info, retention=retention)
            info = self._retain(txn, info, time.time())
            txn.put(stream.encode(), dagcbor.encode(info.record()), db=self._meta)
            return info

        return self._lmdb.write_growing(change)

    def append(
        self,
        entries: Sequence[Entry],
        *,
        origin: bool,
        source: str = "",
        retention: Retention | None = None,
    ) -> StreamInfo:
        """Append a batch of verified entries of one stream, all or none.

        Raises StreamRefused naming the first entry that breaks the chain; on a fork the
        evidence and the forked mark are written (and nothing of the batch).
        """
        stream = _batch_stream(entries)
        fork: list[StreamRefused] = []
        result = self._lmdb.write_growing(
            lambda txn: self._apply(txn, stream, entries, origin, source, retention, fork)
        )
        if fork:
            raise fork[0]
        return result

    def append_group(self, batches: Sequence[Batch]) -> list[StreamInfo | StreamRefused]:
        """Append several batches (of any streams, the same one too, in order) in ONE write
        transaction, so one fsync makes them all durable: what each would get from
        :meth:`append`, its info or its refusal, in the same order.

        Each batch is still all or none: a refused one has written nothing when it is refused
        (every check runs before the first put), except a fork's evidence, as :meth:`append`
        does. Why: concurrent writers' single appends each paid a synced commit of their own.
        """
        results: list[StreamInfo | StreamRefused] = []

        def change(txn: Any) -> None:
            results.clear()  # a full map reruns the whole group from scratch
            for batch in batches:
                fork: list[StreamRefused] = []
                try:
                    stream = _batch_stream(batch.entries)
                    info = self._apply(txn, stream, batch.entries, batch.origin, batch.source, batch.retention, fork)
                except StreamRefused as exc:
                    results.append(exc)
                else:
                    results.append(fork[0] if fork else info)

        self._lmdb.write_growing(change)
        return list(results)

    def _apply(
        self,
        txn: Any,
        stream: str,
        entries: Sequence[Entry],
        origin: bool,
        source: str,
        retention: Retention | None,
        fork: list[StreamRefused],
    ) -> StreamInfo:
        """One batch's change inside a write transaction (see :meth:`append`); a fork is put in
        ``fork`` with its evidence written, any other refusal raised before anything is written."""
        fork.clear()
        now = time.time()
        raw = txn.get(stream.encode(), db=self._meta)
        first = entries[0]
        if raw is not None:
            info = StreamInfo.from_record(dagcbor.decode(raw))
        elif origin:
            info = StreamInfo(stream, first.writer, first.name, 0, None, 1, False, origin, source, Retention(), now)
        else:  # a new replica starts where the holder's retention lets it: the writer signed that entry too
            info = StreamInfo(stream, first.writer, first.name, first.seq - 1, first.prev, first.seq, False,
                              origin, source, Retention(), now)  # fmt: skip
        if info.origin != origin:
            where = "here" if info.origin else f"at {info.source}"
            raise StreamRefused(Refusal.WRONG_STREAM, f"stream {stream} is written {where}, not through this path")
        head_seq, head_cid = info.head_seq, info.head_cid
        for index, entry in enumerate(entries):
            held_raw = txn.get(_key(stream, entry.seq), db=self._entries) if entry.seq <= head_seq else None
            held = CID.for_block(bytes(held_raw), 0x71) if held_raw is not None else None
            try:
                check_next(head_seq, head_cid, info.forked, entry, held)
            except StreamRefused as exc:
                exc.index = index
                if exc.refusal is not Refusal.FORK:
                    raise
                other = bytes(held_raw) if held_raw is not None else self._head_raw(txn, stream, head_seq)
                self._keep_evidence(txn, stream, entry, other)
                txn.put(stream.encode(), dagcbor.encode(_replace(info, forked=True, updated=now).record()),
                        db=self._meta)  # fmt: skip
                fork.append(exc)
                return info
            head_seq, head_cid = entry.seq, entry.cid
        for entry in entries:
            txn.put(_key(stream, entry.seq), entry.raw, db=self._entries)
        info = _replace(info, head_seq=head_seq, head_cid=head_cid, updated=now,
                        retention=retention if retention is not None else info.retention)  # fmt: skip
        info = self._retain(txn, info, now)
        txn.put(stream.encode(), dagcbor.encode(info.record()), db=self._meta)
        return info

    def _head_raw(self, txn: Any, stream: str, seq: int) -> bytes:
        raw = txn.get(_key(stream, seq), db=self._entries)
        return bytes(raw) if raw is not None else b""

    def _keep_evidence(self, txn: Any, stream: str, entry: Entry, other: bytes) -> None:
        raw = txn.get(stream.encode(), db=self._forks)
        evidence: list[dict[str, Any]] = dagcbor.decode(bytes(raw)) if raw is not None else []
        if len(evidence) < 16:  # the first few forks prove it; an endless supply of them proves nothing more
            evidence.append({"seq": entry.seq, "entry": entry.raw, "held": other, "time": int(time.time())})
            txn.put(stream.encode(), dagcbor.encode(evidence), db=self._forks)

    def _retain(self, txn: Any, info: StreamInfo, now: float) -> StreamInfo:
        """Drop entries older than the stream's retention allows (the head always stays)."""
        first = info.first_seq
        keep_from = first
        if info.retention.entries:
            keep_from = max(keep_from, info.head_seq - info.retention.entries + 1)
        cutoff_ms = int((now - info.retention.seconds) * 1000) if info.retention.seconds else None
        seq = first
        while seq < info.head_seq:
            if seq >= keep_from:
                if cutoff_ms is None:
                    break
                raw = txn.get(_key(info.stream, seq), db=self._entries)
                if raw is not None and _entry_time(bytes(raw)) >= cutoff_ms:
                    break
            raw = txn.get(_key(info.stream, seq), db=self._entries)
            if raw is not None:  # kept for the next snapshot, in this same transaction
                txn.put(_key(info.stream, seq), bytes(raw), db=self._compacting)
            txn.delete(_key(info.stream, seq), db=self._entries)
            seq += 1
        return _replace(info, first_seq=max(seq, 1)) if seq != first else info


@dataclass(frozen=True)
class Batch:
    """One append of :meth:`StreamStore.append_group`: verified entries of one stream."""

    entries: Sequence[Entry]
    origin: bool
    source: str = ""
    retention: Retention | None = None


def _batch_stream(entries: Sequence[Entry]) -> str:
    """The one stream a batch belongs to (StreamRefused for an empty or mixed batch)."""
    if not entries:
        raise StreamRefused(Refusal.MALFORMED, "a batch holds at least one entry")
    stream = entries[0].stream
    for index, entry in enumerate(entries):
        if entry.stream != stream:
            raise StreamRefused(Refusal.MALFORMED, "every entry of a batch belongs to the same stream", index)
    return stream


def _entry_time(raw: bytes) -> int:
    """The writer's time of a stored entry (verified when it was stored)."""
    stamp: int = dagcbor.decode(raw)["entry"]["time"]
    return stamp


def _replace(info: StreamInfo, **changes: Any) -> StreamInfo:
    return dataclasses.replace(info, **changes)
