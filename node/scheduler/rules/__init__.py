"""Placement filters, one small module per rule (as Bacalhau's orchestrator does).

Each rule is ``check(candidate, context) -> str | None``: None lets the candidate
through, a string says why it is refused, in words a user can act on.
"""

from __future__ import annotations

from node.scheduler.rules import capabilities, capacity, payment, price, region, requires, runtime, stake

RULES = (runtime, requires, capabilities, region, capacity, price, payment, stake)
