"""Placement: filter by the rules, rank by data gravity and reputation, keep the reason for every candidate.

``mycel job explain`` and ``GET /v1/jobs/{id}/placement`` show the decision as made (a
chosen node's moved bytes corrected by what its offer's answer says it holds: :func:`corrected`). The
executing node runs the same rules (:func:`refusal`) against its own candidate when it
answers an offer, so requester and executor cannot disagree on what a rule means.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.rules import RULES
from node.scheduler.score import score


@dataclass(frozen=True)
class Decision:
    chosen: list[str]  # peer IDs of distinct operators, best first, as many as the redundancy asks (or fewer)
    ranked: list[str]  # every eligible peer, best first: the failover order
    operators: dict[str, str]  # every eligible peer -> the operator it counts as
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


def distinct_operators(ranked: list[Candidate], count: int) -> tuple[list[str], dict[str, str]]:
    """The best ``count`` peers of distinct operators (fewer if there are not as many), and for
    each operator taken, the peer that counts for it. One operator's peers count once."""
    chosen: list[str] = []
    taken_by: dict[str, str] = {}
    for candidate in ranked:
        if len(chosen) == count:
            break
        if candidate.operator_id not in taken_by:
            taken_by[candidate.operator_id] = candidate.peer_id
            chosen.append(candidate.peer_id)
    return chosen, taken_by


def corrected(entry: dict[str, Any], candidate: Candidate, context: PlacementContext, held: int) -> dict[str, Any]:
    """A chosen candidate's entry re-explained with the input bytes its offer said it holds.

    The prediction comes from announcements, which may lag what a node holds (a summary not
    heard yet); the offer's answer is the node's word now. Only the explanation and
    ``moved_bytes`` change (``predicted_moved_bytes`` keeps the prediction): the rank and the
    score stay those the decision was made by. Unchanged when the offer agrees."""
    result = score(replace(candidate, held_bytes=held), context)
    predicted = int(entry.get("predicted_moved_bytes", entry.get("moved_bytes", 0)))
    if result.moved_bytes == predicted:
        return entry
    return {**entry, "moved_bytes": result.moved_bytes, "predicted_moved_bytes": predicted,
            "reason": f"{result.explanation}; by its offer (predicted: move {predicted:,} B)"}  # fmt: skip


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
    chosen, taken_by = distinct_operators([candidate for candidate, _ in eligible], redundancy)
    for position, (candidate, result) in enumerate(eligible):
        verdict = "chosen" if candidate.peer_id in chosen else "standby"
        reason = result.explanation
        if verdict == "standby" and candidate.operator_id in taken_by:
            reason += f"; same operator as {taken_by[candidate.operator_id]}, which counts for it"
        reasons.append(
            {
                "peer_id": candidate.peer_id,
                "verdict": verdict,
                "rank": position + 1,
                "score": round(result.value, 6),
                "moved_bytes": result.moved_bytes,
                "reason": reason,
                "operator": candidate.operator_id,
                "mismatches": candidate.mismatches,
                "reputation": candidate.standing.to_json(),
                **_stake(candidate, context),
            }
        )
    order = {"chosen": 0, "standby": 1, "refused": 2}
    reasons.sort(key=lambda r: (order[r["verdict"]], r.get("rank", 0), r["peer_id"]))
    operators = {candidate.peer_id: candidate.operator_id for candidate, _ in eligible}
    return Decision(chosen, ranked, operators, reasons)
