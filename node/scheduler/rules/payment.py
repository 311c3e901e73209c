"""Payment: a paid job goes only to nodes whose chain address the ledger binds to them.

The client pays after delivery, to the chain address a node's receipt is checked against; a
node with no bound address could not be paid, so it is refused here rather than asked to work
for nothing (``payable`` holds the bound addresses).
"""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if context.payable is None:
        if candidate.price > 0:
            return f"charges {candidate.price} wei per CPU-second: attach a payment authorisation"
        return None
    if not candidate.chain_address:
        return "settles on no chain, and the job carries a payment"
    if candidate.chain_address not in context.payable:
        return f"is not among the nodes the client's payment authorises ({candidate.chain_address})"
    return None
