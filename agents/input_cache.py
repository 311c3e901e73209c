"""A job's inputs without copies: each input CID rebuilt once into a read-only cache on the node's disk.

Staging an input used to export it from the block store for every job: every block
copied out of LMDB and hashed again (0.58 s for 256 MiB) before the agent could start.
Blocks were verified when they were stored, so the cache builds each CID's file or
directory tree once, from the store's blocks without hashing them again, and every
later job reuses it: the sandbox bind-mounts the entry read-only onto ``in/<name>``
(python), or the wasm runtime preopens a tree of hard links to it read-only (WASI has
no call that changes a file's mode or bytes through a read-only preopen).

Layout: ``<root>/<cid>/data`` (the file or directory) and ``<root>/<cid>/entry.json``
(kind and size), built under ``<root>/.build-<cid>-<random>/`` with every file fsynced
and the marker written last, then renamed into place. A directory without a valid
marker (a crash mid-build) is never used: it is removed when the cache is first read.

Eviction: by total size (``jobs.input_cache_mib``), least recently used first (the
marker's mtime is touched on every use, so the order survives a restart), never an
entry that a running job holds. An entry bigger than the whole bound is built, used
and removed when its last job ends.

GC: ``mycel gc`` may run in another process, so the cache is re-validated instead of
told: an entry is used only while the store still holds its CID's whole DAG (one pin
lookup, or a walk of the size index); otherwise it is removed and the job sees the
input missing, as it would without the cache. Entries whose blocks were collected are
also removed at the first use after a start and before an eviction takes a valid one,
so the disk a gc frees is not held here for long.

Privacy: the cache is this node's own disk (mode 0700 under the data dir), read only
through a job's staging, which happens after the private-data gate has let the job
run here; no API route and no other job's sandbox can name it.

Everything here touches the disk: call it off the event loop (the executor runs in a
worker thread).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agents.runtime.sandbox.outputs import remove_tree
from storage import dagpb
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import BlockNotFoundError, InvalidCIDError, UnixFSError
from storage.unixfs.data import NodeType
from storage.unixfs.data import decode as decode_unixfs
from storage.unixfs.exporter import iter_file, list_directory, node_kind

MARKER = "entry.json"
DATA = "data"
FILE, DIRECTORY, SYMLINK = "file", "directory", "symlink"
_KINDS = (FILE, DIRECTORY, SYMLINK)


@dataclass(frozen=True)
class CachedInput:
    """One built entry: ``path`` holds the bytes (read-only), ``size`` counts its files' bytes."""

    cid: str
    path: Path
    kind: str  # FILE, DIRECTORY or SYMLINK
    size: int


class InputCache:
    """The node's input cache under ``root``, bounded to ``max_bytes``; ``builds`` counts the
    entries this process built (a test's proof that a second job did not rebuild)."""

    def __init__(self, root: Path, store: BlockStore, max_bytes: int) -> None:
        self.root = root
        self.store = store
        self.max_bytes = max_bytes
        self.builds = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, CachedInput] = OrderedDict()  # least recently used first
        self._in_use: dict[str, int] = {}
        self._building: dict[str, threading.Lock] = {}
        self._loaded = False

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(entry.size for entry in self._entries.values())

    def entries(self) -> list[CachedInput]:
        """The built entries, least recently used first."""
        with self._lock:
            self._load()
            return list(self._entries.values())

    @contextlib.contextmanager
    def use(self, cid: CID) -> Iterator[CachedInput]:
        """The entry for ``cid`` (built on first use), held (never evicted) while the block runs.

        Raises what an export would (BlockNotFoundError, UnixFSError) when the store does
        not hold the input whole."""
        key = str(cid)
        if not self._loaded:  # the first use after start: what a gc took meanwhile goes now
            self.prune()
        with self._lock:
            self._load()
            self._in_use[key] = self._in_use.get(key, 0) + 1
            build_lock = self._building.setdefault(key, threading.Lock())
        try:
            with build_lock:  # two jobs over one new input: one builds, the other waits and reuses
                entry = self._current(cid)
            self._evict()
            yield entry
        finally:
            with self._lock:
                self._in_use[key] -= 1
                if not self._in_use[key]:
                    del self._in_use[key]
            self._evict()  # an entry over the whole bound goes as soon as its last job ends

    def _current(self, cid: CID) -> CachedInput:
        key = str(cid)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and not os.path.lexists(entry.path):  # removed behind the node's back
            self._remove(key, holders=1)
            entry = None
        if self.store.complete_dag_size(cid) is None:  # never stored whole, or collected since
            if entry is not None:
                self._remove(key, holders=1)  # the cache must not outlive the blocks (kept while a job reads it)
            missing = self.store.missing_blocks(cid)
            raise BlockNotFoundError(missing[0] if missing else cid)
        if entry is None:
            entry = self._build(cid)
        else:
            with contextlib.suppress(OSError):
                os.utime(self.root / key / MARKER)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
        return entry

    # -- building ------------------------------------------------------------------
    def _build(self, cid: CID) -> CachedInput:
        key = str(cid)
        scratch = self.root / f".build-{key}-{uuid.uuid4().hex[:8]}"
        scratch.mkdir(mode=0o700)
        try:
            load: Callable[[CID], bytes] = lambda block: self.store.get(block, verify=False)  # noqa: E731
            kind, size = _export(load, cid, scratch / DATA)
            _write_marker(scratch / MARKER, kind, size)
            _fsync_dir(scratch)
            final = self.root / key
            if final.exists():  # left by a crash between index load and now: never trusted
                remove_tree(final)
            os.rename(scratch, final)
            _fsync_dir(self.root)
        finally:
            if scratch.exists():
                remove_tree(scratch)
        with self._lock:
            self.builds += 1
        return CachedInput(key, final / DATA, kind, size)

    # -- the index ---------------------------------------------------------------------
    def _load(self) -> None:
        """Read what a previous run built (once per process; the caller holds the lock).

        Half-built and half-evicted directories are removed; an entry without a valid
        marker is too, since its bytes were never known to be whole."""
        if self._loaded:
            return
        self._loaded = True
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        found: list[tuple[float, CachedInput]] = []
        for child in self.root.iterdir():
            entry = _read_entry(child) if not child.name.startswith(".") else None
            if entry is None and child.is_dir() and not child.is_symlink():
                remove_tree(child)
            elif entry is None:
                child.unlink(missing_ok=True)
            if entry is None:
                continue
            found.append(((child / MARKER).stat().st_mtime, entry))
        for _mtime, entry in sorted(found, key=lambda item: item[0]):
            self._entries[entry.cid] = entry

    def _remove(self, key: str, holders: int = 0) -> None:
        """Take an entry out of the index and off the disk, unless more than ``holders`` jobs
        use it; renamed first, so it vanishes at once."""
        with self._lock:
            if self._in_use.get(key, 0) > holders:
                return
            self._entries.pop(key, None)
            doomed = self.root / f".evict-{key}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(self.root / key, doomed)
            except FileNotFoundError:
                return
        remove_tree(doomed)

    def prune(self) -> int:
        """Remove the idle entries whose CID the store no longer holds whole; returns how many.

        Run when the cache is first read (a ``mycel gc`` while the node was down) and before
        an eviction removes anything still valid, so collected inputs free their disk first."""
        with self._lock:
            self._load()
            idle = [key for key in self._entries if key not in self._in_use]
        stale = [key for key in idle if self.store.complete_dag_size(CID.parse(key)) is None]
        for key in stale:
            self._remove(key)
        return len(stale)

    def _evict(self) -> None:
        """Remove least recently used entries no job holds until the rest fit the bound
        (entries whose blocks were collected first)."""
        pruned = False
        while True:
            with self._lock:
                total = sum(entry.size for entry in self._entries.values())
                if total <= self.max_bytes:
                    return
                idle = [key for key in self._entries if key not in self._in_use]
            if not pruned:
                pruned = True
                if self.prune():
                    continue
            if not idle:
                return  # everything over the bound is in use; the release will try again
            self._remove(idle[0])  # skipped if a job took it meanwhile: the next pass sees it busy


def _export(load: Callable[[CID], bytes], root: CID, dest: Path) -> tuple[str, int]:
    """Write the UnixFS file, directory or symlink under ``root`` to ``dest`` (read-only,
    every file fsynced); returns its kind and the bytes of its files. Iterative: a
    peer's directory DAG may be nested deeper than Python's recursion limit."""
    total = 0
    top = node_kind(load, root)
    directories: list[Path] = []
    stack: list[tuple[CID, Path]] = [(root, dest)]
    while stack:
        cid, path = stack.pop()
        kind = top if path == dest else node_kind(load, cid)
        if kind == NodeType.FILE:
            with open(path, "wb") as out:
                for chunk in iter_file(load, cid):
                    out.write(chunk)
                    total += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(path, 0o444)
        elif kind == NodeType.DIRECTORY:
            path.mkdir()
            directories.append(path)
            stack.extend((child, path / name) for name, child in reversed(list_directory(load, cid)))
        elif kind == NodeType.SYMLINK:
            node = dagpb.decode(load(cid))  # node_kind decoded it already: dag-pb with UnixFS data
            os.symlink(os.fsdecode(decode_unixfs(node.data or b"").data or b""), path)
        else:
            raise UnixFSError(f"{cid}: UnixFS {kind.name.lower()} nodes cannot be exported")
    for directory in reversed(directories):  # children first: a 0555 parent takes no new entries
        _fsync_dir(directory)
        os.chmod(directory, 0o555)
    name = {NodeType.FILE: FILE, NodeType.DIRECTORY: DIRECTORY}.get(top, SYMLINK)
    return name, total


def _write_marker(path: Path, kind: str, size: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"kind": kind, "size": size}, out)
        out.flush()
        os.fsync(out.fileno())


def _read_entry(directory: Path) -> CachedInput | None:
    """The entry a finished build left in ``directory``, or None when it is not one."""
    try:
        cid = CID.parse(directory.name)
        with open(directory / MARKER, "rb") as stream:
            marker = json.loads(stream.read(4096))
    except (OSError, ValueError, InvalidCIDError):
        return None
    if not isinstance(marker, dict):
        return None
    kind, size = marker.get("kind"), marker.get("size")
    if kind not in _KINDS or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    if not os.path.lexists(directory / DATA) or str(cid) != directory.name:
        return None
    return CachedInput(directory.name, directory / DATA, str(kind), size)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
