"""Payment: a paid job goes only to nodes the client's payment authorises.

The client signs one authorisation per node it will pay; a node outside that set could
not claim, so it is refused here rather than asked to work for nothing. An unpaid job does
not go to a node that charges: it would only decline.
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
