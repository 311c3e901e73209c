"""Placement filters, one small module per rule (as Bacalhau's orchestrator does).

Each rule is ``check(candidate, context) -> str | None``: None lets the candidate
through, a string says why it is refused, in words a user can act on. The reputation rule
also ranks: score.py adds its ``penalty``.
"""

from __future__ import annotations

from node.scheduler.rules import (
    capabilities,
    capacity,
    holder,
    payment,
    price,
    region,
    reputation,
    requires,
    runtime,
    stake,
)

RULES = (runtime, requires, capabilities, holder, region, capacity, price, payment, stake, reputation)
