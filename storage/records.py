"""Small LMDB tables of dag-cbor records (jobs, answers, claims) whose map grows on demand.

The block store has its own, larger machinery; these tables hold node state that must
survive a crash: each write is one transaction, and a full map is doubled and the write
retried, so a long-running node never stops on MapFullError. Every transaction goes
through :class:`~storage.lmdbenv.GatedEnv`, so growing the map never pulls it from
under a reader in another thread, and growth by another process is adopted.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from storage import dagcbor
from storage.lmdbenv import GatedEnv

NEWEST_BATCH = 64  # records read per transaction by newest_first

T = TypeVar("T")


class RecordTables:
    def __init__(self, path: Path, tables: tuple[str, ...], map_size: int = 64 << 20) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lmdb = GatedEnv(path, map_size=map_size, max_dbs=len(tables))
        self._dbs = {name: self._lmdb.env.open_db(name.encode()) for name in tables}

    def write(self, change: Callable[[Writer], T]) -> T:
        """Run ``change`` in one write transaction (rerun from scratch if the map had to grow)."""
        return self._lmdb.write_growing(lambda txn: change(Writer(txn, self._dbs)))

    def put_many(self, table: str, items: Iterable[tuple[str, Any]], overwrite: bool = True) -> bool:
        """Write every (key, record) in one transaction; False if ``overwrite`` is off and a key existed."""
        pending = list(items)
        return self.write(lambda w: all([w.put(table, key, record, overwrite) for key, record in pending]))

    def put(self, table: str, key: str, record: Any, overwrite: bool = True) -> bool:
        return self.put_many(table, [(key, record)], overwrite)

    def get(self, table: str, key: str) -> Any:
        with self._lmdb.read(self._dbs[table]) as txn:
            raw = txn.get(key.encode())
        return None if raw is None else dagcbor.decode(raw)

    def values(self, table: str) -> list[Any]:
        with self._lmdb.read(self._dbs[table]) as txn:
            raws = [value for _, value in txn.cursor()]
        return [dagcbor.decode(raw) for raw in raws]

    def newest_first(self, table: str, before: str | None = None) -> Generator[tuple[str, Any], None, None]:
        """(key, record) from the highest key down, starting below ``before`` when given.

        Records are decoded one at a time as the caller consumes them, so a page of a long
        history reads only that page (and what a filter skips), never the whole table.
        """
        batch: list[tuple[str, bytes]] = [("", b"")]
        while batch:
            # a short read transaction per batch: none is held while the caller works (map growth
            # waits for every reader), and only what the caller consumes is decoded
            batch = []
            with self._lmdb.read(self._dbs[table]) as txn:
                cursor = txn.cursor()
                if before is None:
                    found = cursor.last()
                else:
                    found = cursor.set_range(before.encode())
                    found = cursor.prev() if found else cursor.last()
                while found and len(batch) < NEWEST_BATCH:
                    batch.append((cursor.key().decode(), bytes(cursor.value())))
                    found = cursor.prev()
            for key, raw in batch:
                yield key, dagcbor.decode(raw)
            if batch:
                before = batch[-1][0]

    def count(self, table: str) -> int:
        """Entries in ``table``, from LMDB's own statistics (nothing is read or decoded)."""
        with self._lmdb.read() as txn:
            entries: int = txn.stat(self._dbs[table])["entries"]
        return entries

    def close(self) -> None:
        self._lmdb.close()


class Writer:
    """The tables as one write transaction sees them."""

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any]) -> None:
        self._txn = txn
        self._dbs = dbs

    def put(self, table: str, key: str, record: Any, overwrite: bool = True) -> bool:
        return bool(self._txn.put(key.encode(), dagcbor.encode(record), overwrite=overwrite, db=self._dbs[table]))

    def clear(self, table: str) -> None:
        """Empty ``table`` (it stays open), e.g. before rebuilding a derived index in the same transaction."""
        self._txn.drop(self._dbs[table], delete=False)

    def delete(self, table: str, key: str) -> bool:
        return bool(self._txn.delete(key.encode(), db=self._dbs[table]))

    def get(self, table: str, key: str) -> Any:
        """A record as this transaction sees it (for a read-modify-write that no other write interleaves)."""
        raw = self._txn.get(key.encode(), db=self._dbs[table])
        return None if raw is None else dagcbor.decode(raw)

    def has(self, table: str, key: str) -> bool:
        return self._txn.get(key.encode(), db=self._dbs[table]) is not None
