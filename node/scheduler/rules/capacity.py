"""Refuse nodes whose cores and queue are all taken: one job per core runs, ``queue_slots`` more wait.

What requesters read here comes from announcements (sent again whenever a node's load
changes), so it can lag; the executor's own answer to the offer decides, and a full node
declines as ``busy``, which keeps the job queued rather than failing it.
"""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if candidate.free_slots == 0:
        queue = f" and {candidate.queue_slots} queue places" if candidate.queue_slots else ""
        return f"is full ({candidate.running_jobs} jobs on {candidate.cpu_cores} cores{queue})"
    return None
