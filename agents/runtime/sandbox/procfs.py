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


def _stat_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) for every process this /proc shows."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                fields = stat_file.read().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue  # a zombie holds no memory and is no longer running
            table[int(entry)] = (int(fields[1]), int(fields[21]) * _PAGE)  # fields 4 and 24
        except (OSError, IndexError, ValueError):
            continue
    return table


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
    table = _stat_table()
    if all_but is not None:
        pids = [pid for pid in table if pid != all_but]
    else:
        children: dict[int, list[int]] = {}
        for pid, (parent, _rss) in table.items():
            children.setdefault(parent, []).append(pid)
        pids = [root] if root in table else []
        for pid in pids:  # grows while walked: breadth first
            pids.extend(children.get(pid, ()))
    memory = sum(table[pid][1] for pid in pids) + _memfd_bytes(pids, set())
    return Usage(pids, memory)


def kill_all(pids: list[int]) -> None:
    """SIGKILL each process (one that already exited is skipped)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
