"""Refuse nodes without the capabilities the job needs (a GPU), and nodes that already failed it."""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if candidate.peer_id in context.excluded:
        return "already failed or declined this job"
    if context.needs_gpu and candidate.gpus < 1:
        return "has no GPU, and the agent needs one"
    return None
