"""What every runtime shares: the request, the outcome, and the job's workspace.

The workspace is a private directory per job: ``code/`` (the bundle, read-only),
``in/<name>`` (each input, read-only: exported from the store with every block verified,
or, with the node's input cache, its cache entry mounted or hard-linked there without a
copy, see :mod:`agents.input_cache`),
``out/`` (writable) and ``tmp/`` (writable scratch: HOME and TMPDIR). After the run,
``out/`` becomes a UnixFS DAG in the store and its root is the result CID.

A runtime that never shows the agent its bundle as files (wasm: the module is read from
the store and compiled in the node's process) says so with ``stages_code = False``, and one
that gives the agent no scratch directory with ``uses_scratch = False``: per job, the export
of the bundle and the directories it would need are the largest part of a trivial job's cost.

The output cap counts every writable place (``out/`` and ``tmp/``): bytes of regular
files and the number of entries. It is enforced while the agent runs by
:class:`OutputWatch` (a periodic ``os.scandir`` walk, iterative so a hostile
3000-deep tree cannot overflow the stack) and, for the python runtime, per file by
RLIMIT_FSIZE. A size-limited tmpfs would be exact, but mounting one needs a mount
namespace the in-process wasm runtime cannot enter, and tmpfs keeps output in RAM,
which the output caps (up to 64 GiB) would turn into a memory exhaustion vector.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agents.bundle import Bundle
from agents.manifest import Limits
from agents.outcome import Limit, Outcome
from agents.receipt import PrivateRelease
from agents.runtime.sandbox.outputs import MAX_OUTPUT_DEPTH, SizeWatch, TreeScan, remove_tree, scan_tree
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import UnixFSError
from storage.files import get_path
from storage.leases import PinLease
from storage.unixfs.data import NodeType
from storage.unixfs.exporter import iter_file, list_directory, node_kind

if TYPE_CHECKING:  # the cache imports this package's sandbox helpers; only its type is needed here
    from agents.input_cache import InputCache
    from agents.reaper import Reaper

LOG_CAP = 1 << 20


@dataclass(frozen=True)
class RunRequest:
    job_id: str
    bundle: Bundle
    inputs: dict[str, CID] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits | None = None  # None: the manifest's
    # set by the node (e.g. on a client's cancel message): the runtime stops the agent
    # within about half a second and reports Outcome.cancelled()
    cancel: threading.Event | None = field(default=None, compare=False)
    # set by the node for a job over private data: the result leaves only within the cap
    private: PrivateRelease | None = None
    # set by the executor, never from the wire: the bundle's wheel environment (read-only, on sys.path)
    site: Path | None = None
    # set by the node for a remote requester: the result's pin is held for it (leased), in the
    # transaction that stores the result; None: pinned for good (this node's own job)
    result_lease: PinLease | None = None

    @property
    def effective_limits(self) -> Limits:
        return self.limits or self.bundle.manifest.limits


@dataclass
class RawRun:
    """What a runtime reports; the executor turns it into a receipt."""

    outcome: Outcome
    exit_code: int | None
    logs: bytes
    logs_truncated: bool
    cpu_seconds: float
    peak_memory_bytes: int
    wall_seconds: float

    @property
    def status(self) -> str:
        """The outcome's one-line label, for display only: decide on ``outcome``."""
        return self.outcome.label


class Runtime(Protocol):
    name: str
    version: str
    # optional (read with getattr, default True): ``stages_code`` (the agent reads code/ as
    # files) and ``uses_scratch`` (it gets tmp/); see the module docstring

    def run(self, request: RunRequest, workspace: Workspace) -> RawRun: ...


class LogBuffer:
    """Keeps the first LOG_CAP bytes of an agent's stdout/stderr and counts the rest."""

    def __init__(self, cap: int = LOG_CAP) -> None:
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)


class Staging(Enum):
    """How a job's inputs reach ``in/``; the runtime says which it can confine (``input_staging``)."""

    COPY = "copy"  # bytes copied into in/<name>: no input cache, or no way to make a shared copy read-only
    LINK = "link"  # a tree of hard links to the cache entry (wasm: a read-only preopen, and WASI has no chmod)
    MOUNT = "mount"  # an empty placeholder the sandbox bind-mounts the cache entry onto, read-only (python)


@dataclass(frozen=True)
class StagedInput:
    """One input as the agent sees it: its kind ("file" or "directory") and size in bytes."""

    kind: str
    size: int


class Workspace:
    def __init__(
        self,
        store: BlockStore,
        request: RunRequest,
        parent: Path | None = None,
        cache: InputCache | None = None,
        staging: Staging = Staging.COPY,
        reaper: Reaper | None = None,
        *,
        stage_code: bool = True,
        scratch: bool = True,
    ) -> None:
        self._reaper = reaper  # None: the tree is removed at close, inline
        self._store = store
        self._code_cid = request.bundle.code
        self.code_staged = stage_code  # False: no code/; read the bundle's files with code_bytes()
        self.has_scratch = scratch  # False: no tmp/
        self.root = Path(tempfile.mkdtemp(prefix=f"job-{request.job_id[:16]}-", dir=parent))
        os.chmod(self.root, 0o755)
        self.code = self.root / "code"
        self.inputs = self.root / "in"
        self.out = self.root / "out"
        self.scratch = self.root / "tmp"
        # (cache entry, placeholder under in/): the sandbox mounts each read-only before the agent starts
        self.binds: list[tuple[Path, Path]] = []
        self.staged: dict[str, StagedInput] = {}
        self.bytes_in = 0
        self._held = contextlib.ExitStack()  # the cache entries this job uses: never evicted under it
        try:
            self._stage(store, request, cache, staging)
        except BaseException:
            self.close()
            raise

    def _stage(self, store: BlockStore, request: RunRequest, cache: InputCache | None, staging: Staging) -> None:
        # not atomic: a failure here removes the whole fresh workspace, half-made inputs with it
        if self.code_staged:
            get_path(store, request.bundle.code, self.code, atomic=False)
        self.inputs.mkdir()
        for name, cid in request.inputs.items():
            if not name or "/" in name or name in (".", "..") or name.startswith("."):
                raise ValueError(f"input name {name!r} must be a plain file name")
            target = self.inputs / name
            if cache is None:
                get_path(store, cid, target, atomic=False)
                self.staged[name] = _describe(target)
                continue
            entry = self._held.enter_context(cache.use(cid))
            self.staged[name] = StagedInput("directory" if entry.kind == "directory" else "file", entry.size)
            if entry.kind == "symlink":  # never mounted: the host would resolve it
                os.symlink(os.readlink(entry.path), target)
            elif staging is Staging.MOUNT:
                target.mkdir() if entry.kind == "directory" else target.touch()
                self.binds.append((entry.path, target))
            elif staging is Staging.LINK:
                link_tree(entry.path, target)
            else:
                copy_tree(entry.path, target)
        self.bytes_in = sum(staged.size for staged in self.staged.values())
        if self.code_staged:
            _make_read_only(self.code)
        if staging is not Staging.LINK:  # a linked tree's files are the cache's own, read-only already
            _make_read_only(self.inputs)
        else:
            _make_dirs_read_only(self.inputs)
        self.out.mkdir(mode=0o777)
        os.chmod(self.out, 0o777)  # the sandbox user (not the node) must be able to write
        if self.has_scratch:
            self.scratch.mkdir(mode=0o777)
            os.chmod(self.scratch, 0o777)

    @property
    def writable(self) -> tuple[Path, ...]:
        """Every place an agent can write: all of it counts against the output cap."""
        return (self.out, self.scratch) if self.has_scratch else (self.out,)

    def code_bytes(self, relative: str) -> bytes:
        """The bytes of one file of the bundle: from code/ when staged, else from the store
        (each block verified by the store as it is read, as an export would). A path that is
        not a regular file of the bundle raises UnixFSError (or OSError from code/)."""
        if self.code_staged:
            return (self.code / relative).read_bytes()
        cid = self._code_cid
        for part in Path(relative).parts:
            entries = dict(list_directory(self._store.get, cid))
            if part not in entries:
                raise UnixFSError(f"the bundle has no {relative!r}")
            cid = entries[part]
        if node_kind(self._store.get, cid) != NodeType.FILE:
            raise UnixFSError(f"{relative!r} in the bundle is not a regular file")
        return b"".join(iter_file(self._store.get, cid))

    def close(self) -> None:
        try:
            if self._reaper is not None:
                self._reaper.discard(self.root)
            else:
                remove_tree(self.root)
        finally:
            self._held.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(path: Path) -> StagedInput:
    if path.is_dir() and not path.is_symlink():
        return StagedInput("directory", tree_size(path))
    return StagedInput("file", path.lstat().st_size if path.is_symlink() else path.stat().st_size)


def link_tree(source: Path, target: Path) -> None:
    """``target`` as a tree of directories and hard links to ``source``'s files (no bytes copied).

    Hard links share the cache's inodes: only for a runtime that cannot change a file's
    mode or bytes (wasm's read-only preopen). Symlinks are recreated, never followed."""
    stack = [(source, target)]
    while stack:
        src, dst = stack.pop()
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_dir():
            dst.mkdir()
            with os.scandir(src) as listing:
                stack.extend((Path(entry.path), dst / entry.name) for entry in listing)
        else:
            try:
                os.link(src, dst)
            except OSError:  # another file system (EXDEV) or a link limit: copy this one
                shutil.copyfile(src, dst)


def copy_tree(source: Path, target: Path) -> None:
    """A private copy of a cache entry (no hashing: the entry was built from verified blocks)."""
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, copy_function=shutil.copyfile)
    else:
        shutil.copyfile(source, target)


__all__ = ["MAX_OUTPUT_DEPTH", "TreeScan", "remove_tree", "scan_tree"]


def tree_size(path: Path) -> int:
    return scan_tree([os.fspath(path)]).bytes


class OutputWatch:
    """Checks the writable places against the output caps while the agent runs (see
    :class:`~agents.runtime.sandbox.outputs.SizeWatch`); ``check()`` names the breach."""

    def __init__(self, roots: tuple[Path, ...], limits: Limits, interval: float = 0.002) -> None:
        self.max_bytes = limits.max_output_mib << 20
        self.max_entries = limits.max_output_files
        self._watch = SizeWatch([os.fspath(root) for root in roots], self.max_bytes, self.max_entries, interval)

    def check(self) -> Outcome | None:
        scan = self._watch.check()
        return None if scan is None else breach(scan, self.max_bytes, self.max_entries)


def breach(scan: TreeScan, max_bytes: int, max_entries: int) -> Outcome | None:
    """The output limit a scan is over, if any (bytes first: the bigger harm)."""
    if scan.bytes > max_bytes:
        return Outcome.killed(Limit.OUTPUT, f"more than {max_bytes >> 20} MiB written")
    if scan.entries > max_entries:
        return Outcome.killed(Limit.FILES, f"more than {max_entries} files and directories")
    if scan.too_deep:  # never importable: stop it now rather than walk deeper
        return Outcome.failed(f"invalid output: {scan.problem}")
    return None


def _make_dirs_read_only(path: Path) -> None:
    for dirpath, _subdirs, _filenames in os.walk(path, topdown=False):
        os.chmod(dirpath, 0o555)


def _make_read_only(path: Path) -> None:
    for dirpath, _subdirs, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o444)
        os.chmod(dirpath, 0o555)
    if path.is_file():
        os.chmod(path, 0o444)
