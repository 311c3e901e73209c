"""What every runtime shares: the request, the outcome, and the job's workspace.

The workspace is a private directory per job: ``code/`` (the bundle, read-only),
``in/<name>`` (each input exported from the store, every block verified, read-only)
and ``out/`` (writable). After the run, ``out/`` becomes a UnixFS DAG in the store
and its root is the result CID.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agents.bundle import Bundle
from agents.manifest import Limits
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.files import get_path

LOG_CAP = 1 << 20


@dataclass(frozen=True)
class RunRequest:
    job_id: str
    bundle: Bundle
    inputs: dict[str, CID] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits | None = None  # None: the manifest's
    cancel: threading.Event | None = None  # set by the node when the client cancels: the runtime stops the sandbox

    @property
    def effective_limits(self) -> Limits:
        return self.limits or self.bundle.manifest.limits


@dataclass
class RawRun:
    """What a runtime reports; the executor turns it into a receipt."""

    status: str  # "ok", "failed: ...", "killed: <limit> limit"
    exit_code: int | None
    logs: bytes
    logs_truncated: bool
    cpu_seconds: float
    peak_memory_bytes: int
    wall_seconds: float


class Runtime(Protocol):
    name: str
    version: str

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


class Workspace:
    def __init__(self, store: BlockStore, request: RunRequest, parent: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"job-{request.job_id[:16]}-", dir=parent))
        os.chmod(self.root, 0o755)
        self.code = self.root / "code"
        self.inputs = self.root / "in"
        self.out = self.root / "out"
        get_path(store, request.bundle.code, self.code)
        self.inputs.mkdir()
        self.bytes_in = 0
        for name, cid in request.inputs.items():
            if not name or "/" in name or name in (".", "..") or name.startswith("."):
                raise ValueError(f"input name {name!r} must be a plain file name")
            get_path(store, cid, self.inputs / name)
        self.bytes_in = tree_size(self.inputs)
        _make_read_only(self.code)
        _make_read_only(self.inputs)
        self.out.mkdir(mode=0o777)
        os.chmod(self.out, 0o777)  # the sandbox user (not the node) must be able to write

    def close(self) -> None:
        for path in (self.code, self.inputs):
            _make_writable(path)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _subdirs, filenames in os.walk(path):
        for name in filenames:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def _make_read_only(path: Path) -> None:
    for dirpath, _subdirs, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o444)
        os.chmod(dirpath, 0o555)
    if path.is_file():
        os.chmod(path, 0o444)


def _make_writable(path: Path) -> None:
    if path.is_file():
        os.chmod(path, 0o644)
        return
    for dirpath, _dirnames, _filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
