"""Verify: check a node's receipt against what was asked, and compare redundant results.

The third of the requester's three steps. An ok attempt counts only with a receipt that
verifies, is signed by the node that answered, and names this job, its agent, its inputs
and the result the node sent; anything else is the node's fault (``node_error``: the job
fails over). Redundant runs must agree on the result CID.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agents import receipt as receipts
from agents.errors import ReceiptError
from agents.outcome import Outcome
from node.scheduler.dispatch import Attempt
from node.scheduler.job import JobSpec
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


@dataclass(frozen=True)
class Agreement:
    result: CID | None  # the result every node returned, or None when they disagree
    detail: str


def compare(results: dict[str, Verified]) -> Agreement:
    distinct = {v.result for v in results.values()}
    if len(distinct) == 1:
        (result,) = distinct
        return Agreement(result, f"result {result} from {', '.join(sorted(results))}")
    detail = ", ".join(f"{peer} -> {v.result}" for peer, v in sorted(results.items()))
    return Agreement(None, f"results disagree: {detail}")
