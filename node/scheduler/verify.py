"""Verify: check a node's receipt against what was asked, and compare redundant results.

The third of the requester's three steps. An ok attempt counts only with a receipt that
verifies, is signed by the node that answered, and names this job, its agent, its inputs
and the result the node sent; anything else is the node's fault (``node_error``: the job
fails over). Redundant runs are compared by result CID (:func:`judge`); a mismatch becomes
:class:`Evidence`, which the requester keeps and placement reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from agents import receipt as receipts
from agents.errors import ReceiptError
from agents.outcome import Outcome
from node.scheduler.dispatch import Attempt
from node.scheduler.job import JobSpec
from storage import dagcbor
from storage.cid import CID


@dataclass(frozen=True)
class Verified:
    peer: str
    result: CID
    receipt: bytes
    receipt_cid: CID


def check_receipt(job_id: str, spec: JobSpec, attempt: Attempt) -> Verified | Attempt:
    """The verified result of an ok attempt, or the attempt turned into a node error saying why."""
    if attempt.result is None or attempt.receipt is None:
        return replace(attempt, outcome=Outcome.node_error("answered ok without a result and a receipt"))
    try:
        checked = receipts.verify(attempt.receipt)
    except ReceiptError as exc:
        return replace(attempt, outcome=Outcome.node_error(f"sent a receipt that does not verify: {exc}"))
    if (
        checked.node != attempt.peer
        or checked.result != attempt.result
        or checked.job_id != job_id
        or checked.agent != spec.agent
        or checked.inputs != dict(spec.inputs)
    ):
        return replace(attempt, outcome=Outcome.node_error("sent a receipt that does not match the job or its answer"))
    return Verified(attempt.peer, attempt.result, attempt.receipt, CID.for_block(attempt.receipt, 0x71))


class Referee(StrEnum):
    """How a set of results was judged (shown in the job's corroboration and its evidence)."""

    UNANIMOUS = "unanimous"  # every node returned the same result
    TRUSTED = "trusted"  # they disagree; the requester itself, or a node the client trusts, decides
    MAJORITY = "majority"  # they disagree; more than half of the (distinct-operator) nodes decide
    UNRESOLVED = "unresolved"  # they disagree and nothing tells which is right


@dataclass(frozen=True)
class Judgement:
    result: CID | None  # the result taken as right; None when it cannot be told
    agreed: tuple[str, ...]  # nodes that returned it
    blamed: tuple[str, ...]  # nodes whose result disagrees with it (every node, when unresolved)
    referee: Referee
    detail: str


def judge(results: dict[str, Verified], trusted: frozenset[str]) -> Judgement:
    """Compare results by CID. On disagreement the trusted nodes' result wins (when they agree
    among themselves), else a strict majority, else nobody: all are blamed, none is taken."""
    by_result: dict[CID, list[str]] = {}
    for peer, verified in sorted(results.items()):
        by_result.setdefault(verified.result, []).append(peer)
    listing = ", ".join(f"{peer} -> {v.result}" for peer, v in sorted(results.items()))
    if len(by_result) == 1:
        ((result, peers),) = by_result.items()
        return Judgement(result, tuple(peers), (), Referee.UNANIMOUS, f"result {result} from {', '.join(peers)}")
    vouched = {v.result for peer, v in results.items() if peer in trusted}
    winner: CID | None = None
    referee = Referee.UNRESOLVED
    if len(vouched) == 1:
        (winner,), referee = vouched, Referee.TRUSTED
    elif not vouched:
        best = max(by_result.items(), key=lambda item: len(item[1]))
        if len(best[1]) * 2 > len(results):
            winner, referee = best[0], Referee.MAJORITY
    if winner is None:
        return Judgement(None, (), tuple(sorted(results)), referee, f"results disagree: {listing}")
    agreed = tuple(by_result[winner])
    blamed = tuple(peer for peer in sorted(results) if peer not in agreed)
    detail = f"results disagree: {listing}; {referee.value} result {winner} ({', '.join(agreed)})"
    return Judgement(winner, agreed, blamed, referee, detail)


@dataclass(frozen=True)
class Evidence:
    """A recorded mismatch: every result and the signed receipt behind it, and who was blamed.

    Receipts are kept whole (dag-cbor, signed by each executor), so anyone can check offline
    that each node did claim its result for this job.
    """

    job_id: str
    agent: str
    at: float
    results: dict[str, str]  # peer -> result CID
    receipts: dict[str, bytes]  # peer -> its signed receipt
    blamed: tuple[str, ...]
    referee: Referee

    @classmethod
    def of(cls, job_id: str, agent: CID, results: dict[str, Verified], judgement: Judgement) -> Evidence:
        return cls(
            job_id,
            str(agent),
            time.time(),
            {peer: str(v.result) for peer, v in sorted(results.items())},
            {peer: v.receipt for peer, v in sorted(results.items())},
            judgement.blamed,
            judgement.referee,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "agent": self.agent,
            "at": self.at,
            "results": self.results,
            "receipts": self.receipts,
            "blamed": list(self.blamed),
            "referee": self.referee.value,
        }

    @property
    def evidence_id(self) -> str:
        """The record's content address: an id no two different records share."""
        return str(dagcbor.encode_with_cid(self.to_record())[0])
