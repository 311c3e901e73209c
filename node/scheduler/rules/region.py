"""Data sovereignty: a job whose data is bound to regions runs only on nodes inside them.

The data never moves to a node outside the allowed regions; when no such node can run
the job, it fails with this explanation instead.
"""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if context.regions and candidate.region not in context.regions:
        allowed = ", ".join(context.regions)
        return f"is in region {candidate.region!r}; the job's data may not leave {allowed}"
    return None
