"""Federated runs: a run over one dataset of a group job goes only to a node that holds it.

The dataset is never shipped to a node that lacks it (compute goes to the data); when no
holder can run it, the run fails with this explanation (or fails over to a replica holder).
An executor answering an offer has no ``holders`` in its own context: this rule is the
requester's. Whether the holder may run this agent on that data at all is the holder's own
decision (the private-data running gate, on the executing side).
"""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if context.holders is not None and candidate.peer_id not in context.holders:
        return f"does not hold its input {context.dataset!r}; a federated run goes only where its dataset is"
    return None
