"""Placement: filter by the rules, rank by data gravity, keep the reason for every candidate.

``mycel job explain`` and ``GET /v1/jobs/{id}/placement`` show the decision as made. The
executing node runs the same rules (:func:`refusal`) against its own candidate when it
answers an offer, so requester and executor cannot disagree on what a rule means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.rules import RULES
from node.scheduler.score import score


@dataclass(frozen=True)
class Decision:
    chosen: list[str]  # peer IDs, best first, as many as the redundancy asks (or fewer)
    ranked: list[str]  # every eligible peer, best first: the failover order
    reasons: list[dict[str, Any]]  # one entry per candidate: taken, standby or refused, and why

    @property
    def explanation(self) -> str:
        if self.chosen:
            return "; ".join(f"{r['peer_id']}: {r['verdict']} ({r['reason']})" for r in self.reasons)
        refusals = "; ".join(f"{r['peer_id']} {r['reason']}" for r in self.reasons)
        return f"no node can run this job: {refusals or 'no nodes known'}"


def refusal(candidate: Candidate, context: PlacementContext) -> str | None:
    """Why the rules refuse ``candidate`` for this job, or None when every rule lets it through."""
    return next((reason for rule in RULES if (reason := rule.check(candidate, context))), None)


def _stake(candidate: Candidate, context: PlacementContext) -> dict[str, Any]:
    """A paid job's explanation shows each candidate's stake on the ledger."""
    return {} if context.payable is None else {"stake": candidate.stake}


def decide(candidates: list[Candidate], context: PlacementContext, redundancy: int = 1) -> Decision:
    reasons: list[dict[str, Any]] = []
    eligible = []
    for candidate in sorted(candidates, key=lambda c: c.peer_id):
        refused = refusal(candidate, context)
        if refused is not None:
            reasons.append(
                {"peer_id": candidate.peer_id, "verdict": "refused", "reason": refused, **_stake(candidate, context)}
            )
        else:
            eligible.append((candidate, score(candidate, context)))
    eligible.sort(key=lambda pair: (-pair[1].value, pair[0].peer_id))  # ties: stable by peer ID
    ranked = [candidate.peer_id for candidate, _ in eligible]
    chosen = ranked[:redundancy]
    for position, (candidate, result) in enumerate(eligible):
        verdict = "chosen" if candidate.peer_id in chosen else "standby"
        reasons.append(
            {
                "peer_id": candidate.peer_id,
                "verdict": verdict,
                "rank": position + 1,
                "score": round(result.value, 6),
                "moved_bytes": result.moved_bytes,
                "reason": result.explanation,
                **_stake(candidate, context),
            }
        )
    order = {"chosen": 0, "standby": 1, "refused": 2}
    reasons.sort(key=lambda r: (order[r["verdict"]], r.get("rank", 0), r["peer_id"]))
    return Decision(chosen, ranked, reasons)
