"""Retention compaction: entries older than a stream's retention leave the live log for snapshots.

Retention moves each dropped entry from the live log to the ``compacting`` table in the same
transaction as the append that drops it, so nothing is lost whatever happens next. Off the
append path, :func:`compact` takes them in order, writes one snapshot block per run of at most
MAX_SNAPSHOT_BYTES, pins it, and only then removes them from ``compacting`` and records the
snapshot (its CID in the stream info, and per seq range for ``GET entries?after=``).

A snapshot is one dag-cbor block ``{"stream", "first_seq", "last_seq", "entries": [signed entry
bytes, ...]}``: the entries as bytes, not links, so pinning it walks no chain of ``prev`` links
back through the stream's history, and each entry still verifies offline as it did in the log.
``GET /ipfs/{cid}?format=car`` exports it as a CAR (storage.car reads it back).
Blocking (LMDB, hashing): run in a thread.
"""

from __future__ import annotations

from typing import Any

from node.streams.store import StreamStore
from storage import dagcbor
from storage.blockstore import BlockStore
from storage.cid import CID, DAG_CBOR

MAX_SNAPSHOT_BYTES = 2 << 20  # entry bytes in one snapshot block (blocks are at most 4 MiB)
MAX_SNAPSHOT_ENTRIES = 65536


def snapshot_record(stream: str, entries: list[tuple[int, bytes]]) -> dict[str, Any]:
    return {"stream": stream, "first_seq": entries[0][0], "last_seq": entries[-1][0],
            "entries": [raw for _, raw in entries]}  # fmt: skip


def compact(store: StreamStore, blocks: BlockStore | None, stream: str) -> list[CID]:
    """Snapshot every entry of ``stream`` waiting in ``compacting``; the snapshots written, in order.
    Without a block store the waiting entries are dropped (the node keeps no snapshots)."""
    written: list[CID] = []
    while batch := store.compacting(stream, MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_ENTRIES):
        first, last = batch[0][0], batch[-1][0]
        block = dagcbor.encode(snapshot_record(stream, batch))
        cid = CID.for_block(block, DAG_CBOR)
        if blocks is not None:
            blocks.put(cid, block)
            blocks.pin(cid, f"stream {stream} entries {first}-{last}")
        store.compacted(stream, first, last, cid)
        written.append(cid)
    return written
