"""A job's processes and memory, read from /proc (standard library only: the worker uses it too).

A job is followed by process ancestry, not by session or process group: an agent can
call ``setsid()`` or ``setpgid()`` and leave either, but in its own PID namespace every
process it makes stays a descendant of the namespace's first process (orphans are
reparented to it, and the kernel kills them all when it dies). RLIMIT_NPROC does not
bind uid 0, so the process limit is enforced by counting these processes too.

Memory is the resident pages of every such process plus the bytes held in memfds they
keep open: a memfd written with ``write()`` and never mapped is in no process's RSS.
A mapped memfd is counted twice (as RSS and as a file), which errs towards the limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field

_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Usage:
    """What a job holds right now: its processes (root first) and their memory."""

    pids: list[int] = field(default_factory=list)
    memory_bytes: int = 0


def _resident(pid: int) -> int | None:
    """Resident bytes of a live process; None for one that is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else int(fields[21]) * _PAGE  # fields 3 and 24
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a thread's forks are listed under that thread)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue
    return found


def _memfd_bytes(pids: list[int], seen: set[tuple[int, int]]) -> int:
    total = 0
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if not os.readlink(path).startswith("/memfd:"):
                    continue
                info = os.stat(path)
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def job_usage(root: int, *, all_but: int | None = None) -> Usage:
    """The processes descending from ``root`` (itself included) and their memory.

    With ``all_but``, every process this /proc shows except that one: the warm worker
    runs one job at a time as init of its own PID namespace, where a job's orphans are
    reparented to the worker and are no longer the job's descendants.
    """
    if all_but is not None:
        candidates = [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and int(entry) != all_but]
    else:  # walked from the root, not by scanning every process on the host: cheap for the watcher
        candidates = [root]
        for pid in candidates:  # grows while walked: breadth first
            candidates.extend(_children(pid))
    pids: list[int] = []
    memory = 0
    for pid in candidates:
        resident = _resident(pid)
        if resident is not None:
            pids.append(pid)
            memory += resident
    return Usage(pids, memory + _memfd_bytes(pids, set()))


def kill_all(pids: list[int]) -> None:
    """SIGKILL each process (one that already exited is skipped)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
