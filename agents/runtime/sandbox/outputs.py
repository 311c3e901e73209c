"""Counting what an agent wrote: bytes of regular files and entries, walked iteratively.

Standard library only: the warm worker (which must not import the node) uses it too.
The walk is iterative because the tree's depth is the agent's choice, and it can stop
early so a flood of files costs a watcher a bounded walk.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass

MAX_OUTPUT_DEPTH = 128  # directory levels the UnixFS importer (recursive) handles safely


@dataclass(frozen=True)
class TreeScan:
    """What a walk of the writable places found: bytes of regular files, entries, and
    the first reason the tree cannot be imported (None when it can)."""

    bytes: int
    entries: int
    problem: str | None
    too_deep: bool = False  # nested past MAX_OUTPUT_DEPTH: never importable, and not walked further


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def scan_tree(roots: Sequence[str | os.PathLike[str]], stop_entries: int | None = None) -> TreeScan:
    """Walk ``roots`` without recursion and by directory descriptors (a deep tree's paths
    outgrow PATH_MAX), holding two descriptors per level, at most MAX_OUTPUT_DEPTH levels.

    Stops counting after ``stop_entries`` entries, so a flood of files costs the watcher a
    bounded walk. ``problem`` names what the importer would refuse: a name that is not
    UTF-8, a tree deeper than MAX_OUTPUT_DEPTH, or a FIFO, socket or device file.
    """
    total = entries = 0
    problem: str | None = None
    too_deep = False
    for root in roots:
        try:
            root_fd = os.open(root, _DIRECTORY)
        except OSError:
            continue
        stack = [(root_fd, os.scandir(root_fd), 0)]
        try:
            while stack:
                fd, iterator, depth = stack[-1]
                entry = next(iterator, None)
                if entry is None:
                    iterator.close()
                    os.close(fd)
                    stack.pop()
                    continue
                entries += 1
                if stop_entries is not None and entries > stop_entries:
                    return TreeScan(total, entries, problem, too_deep)
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if problem is None:
                    problem = _import_problem(entry.name, info.st_mode, depth)
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
                elif stat.S_ISDIR(info.st_mode):
                    if depth + 1 >= MAX_OUTPUT_DEPTH:
                        too_deep = True
                        continue
                    try:
                        child = os.open(entry.name, _DIRECTORY, dir_fd=fd)
                    except OSError:
                        continue
                    stack.append((child, os.scandir(child), depth + 1))
        finally:
            for fd, iterator, _depth in stack:
                iterator.close()
                os.close(fd)
    return TreeScan(total, entries, problem, too_deep)


def _import_problem(name: str, mode: int, depth: int) -> str | None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"a file name that is not UTF-8: {os.fsencode(name)!r}"
    if depth + 1 >= MAX_OUTPUT_DEPTH and stat.S_ISDIR(mode):
        return f"directories nested deeper than {MAX_OUTPUT_DEPTH} levels"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        return f"{name!r} is not a regular file, directory or symlink"
    return None


_LIFT_DEPTH = 32


def remove_tree(root: str | os.PathLike[str]) -> None:
    """Remove a job's tree however deep or unwritable the agent left it.

    Iterative and by descriptors; a subtree deeper than a few dozen levels is first
    renamed to the top and removed after the current walk, so the walk never holds
    more than about 64 descriptors and visits each directory once.
    """
    try:
        os.chmod(root, 0o755)
        root_fd = os.open(root, _DIRECTORY)
    except OSError:
        return
    lifted: list[str] = []
    try:
        _remove_below(root_fd, None, root_fd, lifted)
        while lifted:
            name = lifted.pop()
            try:
                fd = os.open(name, _DIRECTORY, dir_fd=root_fd)
            except OSError:
                continue
            _remove_below(fd, name, root_fd, lifted)
    finally:
        os.close(root_fd)
    with contextlib.suppress(OSError):
        os.rmdir(root)


def _remove_below(top_fd: int, top_name: str | None, root_fd: int, lifted: list[str]) -> None:
    """Empty the directory open at ``top_fd`` (and remove it from ``root_fd`` if named)."""
    stack = [(top_fd, os.scandir(top_fd), 0, top_name)]
    while stack:
        fd, iterator, depth, name = stack[-1]
        entry = next(iterator, None)
        if entry is None:
            iterator.close()
            stack.pop()
            if name is not None:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=stack[-1][0] if stack else root_fd)
            continue
        if not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.name, dir_fd=fd)
            continue
        with contextlib.suppress(OSError):
            os.chmod(entry.name, 0o755, dir_fd=fd, follow_symlinks=False)
        if depth + 1 >= _LIFT_DEPTH:
            moved = f".lifted-{len(lifted)}-{os.urandom(4).hex()}"
            with contextlib.suppress(OSError):
                os.rename(entry.name, moved, src_dir_fd=fd, dst_dir_fd=root_fd)
                lifted.append(moved)
            continue
        try:
            child = os.open(entry.name, _DIRECTORY, dir_fd=fd)
        except OSError:
            continue
        stack.append((child, os.scandir(child), depth + 1, entry.name))


class SizeWatch:
    """Walks the writable places while the agent runs, cheap enough to call every poll.

    ``check()`` walks only once ``interval`` has passed, then backs off to ten times the
    last walk's duration, so a tree of many files costs at most about a tenth of a core.
    It returns the scan when it is over a cap or too deep to import, else None.
    """

    def __init__(self, roots: Sequence[str], max_bytes: int, max_entries: int, interval: float = 0.002) -> None:
        self.roots = list(roots)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.interval = interval
        self._next = 0.0

    def check(self) -> TreeScan | None:
        now = time.monotonic()
        if now < self._next:
            return None
        scan = scan_tree(self.roots, stop_entries=self.max_entries)
        spent = time.monotonic() - now
        self._next = time.monotonic() + max(self.interval, 10 * spent)
        if scan.bytes > self.max_bytes or scan.entries > self.max_entries or scan.too_deep:
            return scan
        return None
