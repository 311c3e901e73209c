"""Refuse nodes already running a job per core."""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if candidate.running_jobs >= candidate.cpu_cores:
        return f"is full ({candidate.running_jobs} jobs on {candidate.cpu_cores} cores)"
    return None
