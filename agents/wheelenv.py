"""Read-only python environments built from a bundle's own wheels, cached by content.

A python bundle may bring ``wheels/*.whl``. Before its first run on a node, the node
installs exactly those wheels with pip (``--no-index --no-deps --only-binary :all:``:
offline, nothing resolved, nothing built from source) into a temporary directory, makes
the tree read-only and renames it into place: a half-built environment never has the
final name. The key is the CID of the bundle's ``wheels`` directory, so the same wheels
give the same environment, reused by every job and every agent that brings them.

The cache is bounded in bytes: after each build the least recently used environments
(by the directory's mtime, touched on every use) go until the rest fit, never one that a
running job is using. Everything here touches the disk or runs pip: call it off the event
loop (the executor runs in a worker thread).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

from agents.errors import AgentError, RuntimeUnavailable
from agents.runtime.sandbox.outputs import remove_tree, scan_tree

BUILD_TIMEOUT = 300.0  # seconds for one pip install of a bundle's wheels
_REASON_CAP = 300


class WheelInstallFailed(AgentError):
    """A bundle's wheels do not install: the agent's fault, and any node would fail the same."""


class WheelEnvironments:
    """The node's cache of wheel environments under ``root`` (one per interpreter), bounded
    to ``max_bytes``; ``builds`` counts the pip installs this process ran."""

    def __init__(self, root: Path, max_bytes: int, timeout: float = BUILD_TIMEOUT) -> None:
        self.root = root / sys.implementation.cache_tag  # bytecode and ABI tags are the interpreter's
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.builds = 0
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._in_use: dict[str, int] = {}
        self._swept = False

    @contextlib.contextmanager
    def use(self, key: str, wheels_dir: Path, wheels: tuple[str, ...]) -> Iterator[Path]:
        """The environment for these wheels (built on first use), held while the block runs."""
        with self._lock:
            self._in_use[key] = self._in_use.get(key, 0) + 1
            build_lock = self._building.setdefault(key, threading.Lock())
        try:
            with build_lock:  # two jobs of one new bundle: one builds, the other waits and reuses
                path = self.root / key
                if path.is_dir():
                    os.utime(path)
                else:
                    self._build(path, wheels_dir, wheels)
            yield path
        finally:
            with self._lock:
                self._in_use[key] -= 1
                if not self._in_use[key]:
                    del self._in_use[key]

    def _build(self, path: Path, wheels_dir: Path, wheels: tuple[str, ...]) -> None:
        if importlib.util.find_spec("pip") is None:  # the node's lack, not the bundle's: another node may run it
            raise RuntimeUnavailable("this node's python has no pip, so it cannot install a bundle's wheels")
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep()
        expanded = sum(_check_wheel(wheels_dir / name, name) for name in wheels)
        if expanded > self.max_bytes:
            raise WheelInstallFailed(
                f"the bundle's wheels unpack to {expanded >> 20} MiB, over this node's wheel cache of "
                f"{self.max_bytes >> 20} MiB (jobs.wheel_cache_mib)"
            )
        scratch = self.root / f".build-{path.name}-{uuid.uuid4().hex[:8]}"
        command = [sys.executable, "-I", "-m", "pip", "install", "--isolated", "--no-input", "--no-cache-dir",
                   "--disable-pip-version-check", "--no-warn-script-location", "--no-index", "--no-deps",
                   "--only-binary", ":all:", "--find-links", str(wheels_dir), "--target", str(scratch),
                   *(str(wheels_dir / name) for name in wheels)]  # fmt: skip
        try:
            try:
                done = subprocess.run(
                    command,
                    capture_output=True,
                    timeout=self.timeout,
                    env={"PATH": "/usr/bin:/bin", "HOME": str(self.root)},
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                raise WheelInstallFailed(
                    f"installing the bundle's wheels took longer than {self.timeout:.0f} s"
                ) from None
            self.builds += 1
            if done.returncode != 0:
                raise WheelInstallFailed(_pip_reason(done.stderr.decode("utf-8", "replace"), wheels))
            _make_read_only(scratch)
            os.rename(scratch, path)
        finally:
            if scratch.exists():
                remove_tree(scratch)
        self._evict(keep=path.name)

    def _sweep(self) -> None:
        """Half-built environments of a node that died mid-build (once per process)."""
        if self._swept:
            return
        self._swept = True
        for entry in self.root.iterdir():
            if entry.name.startswith(".build-"):
                remove_tree(entry)

    def _evict(self, keep: str) -> None:
        """Remove the least recently used environments until the cache fits its bound."""
        entries = [entry for entry in self.root.iterdir() if not entry.name.startswith(".") and entry.is_dir()]
        sizes = {entry.name: scan_tree([os.fspath(entry)]).bytes for entry in entries}
        total = sum(sizes.values())
        for entry in sorted(entries, key=lambda e: e.stat().st_mtime):
            if total <= self.max_bytes:
                return
            with self._lock:
                busy = entry.name == keep or entry.name in self._in_use
            if not busy:
                remove_tree(entry)
                total -= sizes[entry.name]
        if total > self.max_bytes:
            raise WheelInstallFailed(
                f"the bundle's wheels install to more than this node's wheel cache holds "
                f"({self.max_bytes >> 20} MiB, jobs.wheel_cache_mib)"
            )


def _check_wheel(path: Path, name: str) -> int:
    """Open the wheel as the zip it must be and refuse unsafe member names; returns its unpacked size."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WheelInstallFailed(f"wheel {name} does not install: not a valid wheel archive ({exc})") from None
    if not any(m.filename.endswith(".dist-info/WHEEL") for m in members):
        raise WheelInstallFailed(f"wheel {name} does not install: it has no .dist-info/WHEEL")
    for member in members:
        parts = member.filename.split("/")
        if member.filename.startswith("/") or ".." in parts or "\\" in member.filename:
            raise WheelInstallFailed(f"wheel {name} does not install: member {member.filename!r} leaves the target")
    return sum(m.file_size for m in members)


def _pip_reason(stderr: str, wheels: tuple[str, ...]) -> str:
    """One line: the wheels pip named (all of them if it named none) and its last error line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "pip failed"
    named = [name for name in wheels if name in stderr] or list(wheels)
    return f"wheel {', '.join(named)} does not install: {last}"[:_REASON_CAP]


def _make_read_only(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o444)
        os.chmod(dirpath, 0o555)
