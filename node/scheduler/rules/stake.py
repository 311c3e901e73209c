"""Stake: a paid job may ask for executors that have staked at least a given amount.

A fresh identity costs nothing to make; a stake locked on the ledger (withdrawable only after a
delay) does, so the client's commitment can name a minimum and nodes below it are not asked.
"""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext


def check(candidate: Candidate, context: PlacementContext) -> str | None:
    if context.payable is None or context.min_stake <= 0 or candidate.stake >= context.min_stake:
        return None
    return f"stakes {candidate.stake} wei, below the {context.min_stake} wei the job asks for"
