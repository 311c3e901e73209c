"""Resident memory of a job, read from /proc (standard library only: the worker uses it too)."""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE")


def session_rss(session: int) -> int:
    """Resident bytes of every process in ``session`` (a job may fork, within its limits)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                fields = stat_file.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:  # field 6: session id
                total += int(fields[21]) * _PAGE  # field 24: resident pages
        except (OSError, IndexError, ValueError):
            continue
    return total
