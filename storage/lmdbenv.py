"""One LMDB environment whose memory map can grow safely while threads and the event loop read it.

LMDB may remap its file (``mdb_env_set_mapsize``) only while *no* transaction is
active in the process: the remap unmaps the old region, and a reader in another
thread that still points into it reads freed memory or crashes. Two events need
a remap:

* this process fills the map (``MDB_MAP_FULL``): the map is doubled;
* another process (``mycel gc`` / ``mycel put`` on the same data directory) grew
  the map and wrote past the size this process has mapped: every transaction
  begin then fails with ``MDB_MAP_RESIZED`` until the new size is adopted with
  ``set_mapsize(0)``.

Every transaction therefore goes through :class:`MapGate`, a readers/writer gate:
transactions hold it shared, a remap holds it exclusively, so a remap waits for
the transactions in flight to end and new ones wait for the remap (the remap
itself takes milliseconds). Pending remaps have priority, so a stream of readers
cannot starve growth.

Why not map a huge sparse region (say 1 TiB) once and never grow? It costs only
address space, but address space is exactly what ``RLIMIT_AS`` (``ulimit -v``,
container limits, the sandbox launcher's limit in a forked child) counts, so a
node under such a limit could not even open its store; and another process
could still grow the map past it. The gate keeps the map as large as the data
needs and handles both kinds of growth.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from storage.errors import StorageError

log = logging.getLogger("mycelnet.storage")

_ADOPT_ATTEMPTS = 8
T = TypeVar("T")


class MapGateError(StorageError):
    """A thread asked to remap the LMDB map while it still holds a transaction of its own.

    Waiting would deadlock (the remap waits for that very transaction), so this is
    raised instead: end the transaction before writing, or write inside it.
    """


class MapGate:
    """A readers/writer gate: transactions enter shared, map resizes enter exclusive.

    Shared entry is reentrant per thread (a thread that already holds it never waits,
    even while a resize is pending, or it would wait for itself).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._resizing = False
        self._waiting_resizers = 0
        self._local = threading.local()

    def _depth(self) -> int:
        depth: int = getattr(self._local, "depth", 0)
        return depth

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth = self._depth()
        if depth == 0:
            with self._cond:
                while self._resizing or self._waiting_resizers:
                    self._cond.wait()
                self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if self._depth():
            raise MapGateError(
                "cannot resize the LMDB map while this thread holds a transaction on it; finish the read before writing"
            )
        with self._cond:
            self._waiting_resizers += 1
            try:
                while self._resizing or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_resizers -= 1
            self._resizing = True
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class GatedEnv:
    """An ``lmdb.Environment`` whose transactions all pass through one :class:`MapGate`.

    Use :meth:`read` and :meth:`write` for every transaction; a full map is grown
    with :meth:`grow`, and growth by another process is adopted transparently when
    a transaction begins.
    """

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        self.path = Path(path)
        self.env = lmdb.open(str(path), **options)
        self.gate = MapGate()
        self.remaps = 0  # how often the map was resized in this process (tests and metrics read it)
        # write transactions that reached their commit: what group commit saves is counted, not guessed
        self.commits = 0

    @contextmanager
    def read(self, db: Any = None, *, buffers: bool = False) -> Iterator[Any]:
        with self._begin(write=False, db=db, buffers=buffers) as txn:
            yield txn

    @contextmanager
    def write(self, db: Any = None) -> Iterator[Any]:
        with self._begin(write=True, db=db, buffers=False) as txn:
            yield txn

    @contextmanager
    def _begin(self, *, write: bool, db: Any, buffers: bool) -> Iterator[Any]:
        for _ in range(_ADOPT_ATTEMPTS):
            with self.gate.shared():
                try:
                    txn: Any = (
                        self.env.begin(db=db, write=write, buffers=True)
                        if buffers
                        else self.env.begin(db=db, write=write)
                    )
                except lmdb.MapResizedError:
                    pass  # adopt below, outside the shared hold
                else:
                    with txn:
                        yield txn
                        if write:  # still inside: LMDB's writer lock serialises this count
                            self.commits += 1
                    return
            self.adopt()
        raise StorageError(
            f"the LMDB map of {self.path} keeps being resized by another process; "
            "retry once the other `mycel` command has finished"
        )

    def adopt(self) -> None:
        """Take on the map size another process has grown the file to (no transaction may be open)."""
        with self.gate.exclusive():
            before = self.env.info()["map_size"]
            self.env.set_mapsize(0)
            self.remaps += 1
            log.info("adopted LMDB map size of %s: %d -> %d bytes", self.path, before, self.env.info()["map_size"])

    def grow(self, observed: int) -> None:
        """Double the map, unless another thread already grew it since ``observed`` was read."""
        with self.gate.exclusive():
            current: int = self.env.info()["map_size"]
            if current > observed:
                return
            self.env.set_mapsize(current * 2)
            self.remaps += 1
            log.info("grew LMDB map of %s to %d MiB", self.path, (current * 2) >> 20)

    def write_growing(self, change: Callable[[Any], T], db: Any = None) -> T:
        """Run ``change`` in one write transaction, rerun from scratch after growing a full map."""
        while True:
            observed = self.map_size()
            try:
                with self.write(db) as txn:
                    return change(txn)
            except lmdb.MapFullError:
                self.grow(observed)

    def map_size(self) -> int:
        """The mapped size; read under the gate, since LMDB reads it from the map itself."""
        with self.gate.shared():
            size: int = self.env.info()["map_size"]
        return size

    def close(self) -> None:
        with self.gate.exclusive():
            self.env.close()
