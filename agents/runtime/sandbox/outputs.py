"""Counting what an agent wrote: bytes of regular files and entries, walked iteratively.

Standard library only: the warm worker (which must not import the node) uses it too.
The walk is iterative because the tree's depth is the agent's choice, and it can stop
early so a flood of files costs a watcher a bounded walk.
"""

from __future__ import annotations

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


def scan_tree(roots: Sequence[str | os.PathLike[str]], stop_entries: int | None = None) -> TreeScan:
    """Walk ``roots`` iteratively (no recursion: depth is the agent's choice).

    Stops counting after ``stop_entries`` entries, so a flood of files costs the watcher a
    bounded walk. ``problem`` names what the importer would refuse: a name that is not
    UTF-8, a tree deeper than MAX_OUTPUT_DEPTH, or a FIFO, socket or device file.
    """
    total = entries = 0
    problem: str | None = None
    stack: list[tuple[str, int]] = [(os.fspath(root), 0) for root in roots]
    while stack:
        path, depth = stack.pop()
        try:
            iterator = os.scandir(path)
        except OSError:
            continue
        with iterator:
            for entry in iterator:
                entries += 1
                if stop_entries is not None and entries > stop_entries:
                    return TreeScan(total, entries, problem)
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if problem is None:
                    problem = _import_problem(entry.path, entry.name, info.st_mode, depth)
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
                elif stat.S_ISDIR(info.st_mode):
                    stack.append((entry.path, depth + 1))
    return TreeScan(total, entries, problem)


def _import_problem(path: str, name: str, mode: int, depth: int) -> str | None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"a file name that is not UTF-8: {os.fsencode(name)!r}"
    if depth >= MAX_OUTPUT_DEPTH:
        return f"directories nested deeper than {MAX_OUTPUT_DEPTH} levels"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        return f"{os.path.basename(path)!r} is not a regular file, directory or symlink"
    return None


class SizeWatch:
    """Walks the writable places while the agent runs, cheap enough to call every poll.

    ``check()`` walks only once ``interval`` has passed, then backs off to ten times the
    last walk's duration, so a tree of many files costs at most about a tenth of a core.
    It returns the scan when it is over a cap, else None.
    """

    def __init__(self, roots: Sequence[str], max_bytes: int, max_entries: int, interval: float = 0.01) -> None:
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
        if scan.bytes > self.max_bytes or scan.entries > self.max_entries:
            return scan
        return None
