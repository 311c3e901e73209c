"""Data gravity: rank nodes by the time the job would take to start there, data first.

Every term is in seconds, so they add up honestly: moving the input bytes a node lacks
(bytes / bandwidth + RTT), waiting in its queue, the price (converted at
PRICE_SECONDS_PER_WEI) and the penalty of its reputation here (node/scheduler/rules/reputation.py).
Bytes a node already holds cost nothing to move, which is what pulls compute to the data.
Higher score is better: ``score = -(seconds)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.rules.reputation import penalty as reputation_penalty

PRICE_SECONDS_PER_WEI = 1e-9
# The wait a node's load costs, per job it holds beyond its free cores, per core: a nominal job
# length, since nobody knows how long other clients' jobs run. It puts a node whose cores are
# all busy (its queue taking the job) behind one that can start it now; a node with a free core
# costs nothing, so data gravity still decides between nodes that can start at once.
QUEUE_SECONDS_PER_JOB = 1.0


@dataclass(frozen=True)
class Score:
    value: float
    moved_bytes: int
    transfer_seconds: float
    explanation: str


def score(candidate: Candidate, context: PlacementContext) -> Score:
    held = min(candidate.held_bytes, context.input_bytes)
    missing = context.input_bytes - held
    transfer = (missing / candidate.bandwidth + candidate.rtt) if missing else 0.0
    price_seconds = candidate.price * PRICE_SECONDS_PER_WEI
    penalty, record = reputation_penalty(candidate)
    cores = max(1, candidate.cpu_cores)
    waiting = max(0, candidate.running_jobs - cores + 1)  # 0 while a core is free
    queue = candidate.queue_wait + QUEUE_SECONDS_PER_JOB * waiting / cores
    total = transfer + queue + price_seconds + penalty
    explanation = (
        f"holds {_size(held)} of {_size(context.input_bytes)} input; would move {_size(missing)} "
        f"({transfer:.3f} s); queue {queue:.3f} s; price {candidate.price}"
    )
    if record:
        explanation += f"; {record}"
    return Score(-total, missing, transfer, explanation)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
