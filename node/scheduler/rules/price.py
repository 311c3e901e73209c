"""Refuse nodes that charge more than the client will pay."""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if context.max_price is not None and candidate.price > context.max_price:
        return f"charges {candidate.price} wei per CPU-second, above the job's maximum of {context.max_price}"
    return None
