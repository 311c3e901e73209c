"""Reputation: nodes this one saw lie or fail recently rank lower, and repeated liars are refused.

The only rule that ranks as well as filters. Its input is the candidate's
:class:`~node.scheduler.reputation.Standing`, built by this node from outcomes it observed
and receipts it verified (never from anything a peer announces), decayed by age. ``check``
refuses a node whose recent wrong results reach the policy's ``exclude_at``; ``penalty``
gives the seconds the score adds, with the words ``mycel job explain`` shows.
"""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.reputation import Event


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    standing = candidate.standing
    if not standing.excluded:
        return None
    recent = standing.weights.get(Event.DISAGREED, 0.0)
    return (
        f"returned results judged wrong {standing.mismatches} time(s) here ({recent:.1f} after decay): "
        "excluded until that fades (GET /v1/reputation, GET /v1/evidence)"
    )


def penalty(candidate: Candidate) -> tuple[float, str]:
    """Seconds added to the candidate's placement score, and why ('' for a node with no record)."""
    standing = candidate.standing
    if not standing.known:
        return 0.0, ""
    why = standing.summary()
    if standing.mismatches:
        why += f"; {standing.mismatches} recorded mismatch(es), see GET /v1/evidence"
    return standing.penalty, why
