"""Refuse nodes that lack the agent's runtime (unknown runtime: checked once the bundle is opened)."""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if context.runtime is not None and context.runtime not in candidate.runtimes:
        offered = ", ".join(candidate.runtimes) or "none"
        return f"has no {context.runtime} runtime (offers {offered})"
    return None
