"""Reputation: what this node saw of each peer it gave work to, and how that ranks the peer.

A requester remembers, per peer, the outcomes it observed itself: results that came back
with a receipt that verified, results that matched another operator's, results judged wrong
(with the signed receipts kept as evidence), declines, timeouts, deaths mid-run and answers
that came after the job's wall-clock limit. Nothing a peer says about itself or others goes
in: every :class:`Observation` is made here, by this node's clock and its receipt checks.

The record is local (LMDB, in the job store) and survives restarts. Recent events weigh more:
each event's weight halves every ``half_life`` seconds, so a node that lied or died long ago
earns its way back, and one that did so recently ranks below the others (a penalty in
seconds, the unit placement's score adds up) or, past ``exclude_at`` recent wrong results,
is refused (node/scheduler/rules/reputation.py).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.errors import ConfigError


class Event(enum.Enum):
    """One observed outcome of a peer's attempt at a job."""

    COMPLETED = "completed"  # returned a result whose signed receipt verified
    MATCHED = "matched"  # its result agreed with another distinct operator's or a trusted node's
    DISAGREED = "disagreed"  # its result was judged wrong (evidence kept, see GET /v1/evidence)
    DECLINED = "declined"  # refused the offer or the run
    TIMED_OUT = "timed_out"  # no answer within the run timeout (the job's wall-clock limit plus the grace)
    # unreachable, silent to an offer, lost mid-run, a node-side error, a malformed answer or a bad receipt
    DIED = "died"
    LATE = "late"  # answered, but after the job's wall-clock limit had passed


# Seconds of placement score each event costs at full weight (negative: it earns credit).
PENALTY_SECONDS: Mapping[Event, float] = {
    Event.COMPLETED: -5.0,
    Event.MATCHED: -30.0,
    Event.DISAGREED: 3600.0,  # one recent wrong result outweighs any data gravity a node can offer
    Event.DECLINED: 10.0,
    Event.TIMED_OUT: 600.0,
    Event.DIED: 600.0,
    Event.LATE: 60.0,
}
DEFAULT_HALF_LIFE = 86400.0  # seconds
DEFAULT_EXCLUDE_AT = 3.0  # decayed wrong results at which a node is refused outright
MAX_EVENTS_PER_PEER = 64  # the newest are kept: older ones weigh almost nothing by then
MAX_PEERS = 4096  # past this, the peer heard from least recently is forgotten


@dataclass(frozen=True)
class Observation:
    peer: str
    event: Event
    at: float  # this node's clock (seconds since the epoch)
    job_id: str = ""

    def to_record(self) -> list[Any]:
        return [self.event.value, self.at, self.job_id]

    @classmethod
    def from_record(cls, peer: str, record: Any) -> Observation | None:
        """An observation read back from the store (None for an entry this version cannot read)."""
        if not isinstance(record, list) or len(record) != 3:
            return None
        event, at, job_id = record
        if not isinstance(at, int | float) or not isinstance(job_id, str):
            return None
        try:
            return cls(peer, Event(event), float(at), job_id)
        except ValueError:
            return None


@dataclass(frozen=True)
class ReputationPolicy:
    """How fast events fade and when a liar is refused rather than ranked down."""

    half_life: float = DEFAULT_HALF_LIFE
    exclude_at: float = DEFAULT_EXCLUDE_AT

    def __post_init__(self) -> None:
        if not (math.isfinite(self.half_life) and self.half_life > 0):
            raise ConfigError(f"the reputation half-life must be a positive number of seconds, got {self.half_life}")
        if not (math.isfinite(self.exclude_at) and self.exclude_at > 0):
            raise ConfigError(f"the reputation exclusion threshold must be positive, got {self.exclude_at}")

    def weight(self, at: float, now: float) -> float:
        """1 for an event now, 1/2 one half-life ago; an event 'in the future' counts as now."""
        return float(0.5 ** (max(0.0, now - at) / self.half_life))


@dataclass(frozen=True)
class Standing:
    """A peer's record as placement reads it, at one moment."""

    counts: Mapping[Event, int] = field(default_factory=dict)  # every event kept, undecayed
    weights: Mapping[Event, float] = field(default_factory=dict)  # the same, decayed to now
    penalty: float = 0.0  # seconds added to its placement score (never negative: no bonus over a stranger)
    excluded: bool = False  # refused by the reputation rule
    last: float | None = None  # when the newest event was seen

    @property
    def mismatches(self) -> int:
        return self.counts.get(Event.DISAGREED, 0)

    @property
    def known(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        """One line for ``mycel job explain``: the events that cost, with the penalty."""
        if not self.known:
            return "no record"
        parts = [f"{count} {event.value.replace('_', ' ')}" for event, count in self.counts.items() if count]
        return f"record: {', '.join(parts)} (+{self.penalty:.0f} s)"

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {event.value: self.counts.get(event, 0) for event in Event},
            "weights": {event.value: round(self.weights.get(event, 0.0), 6) for event in Event},
            "penalty_seconds": round(self.penalty, 3),
            "excluded": self.excluded,
            "last": self.last,
        }


NEUTRAL = Standing()


def assess(observations: Iterable[Observation], now: float, policy: ReputationPolicy) -> Standing:
    """Score one peer's observations: decayed weights per event, the penalty and the exclusion."""
    counts: dict[Event, int] = {}
    weights: dict[Event, float] = {}
    last: float | None = None
    for seen in observations:
        counts[seen.event] = counts.get(seen.event, 0) + 1
        weights[seen.event] = weights.get(seen.event, 0.0) + policy.weight(seen.at, now)
        last = seen.at if last is None else max(last, seen.at)
    if not counts:
        return NEUTRAL
    penalty = max(0.0, sum(PENALTY_SECONDS[event] * weight for event, weight in weights.items()))
    excluded = weights.get(Event.DISAGREED, 0.0) >= policy.exclude_at
    ordered = {event: counts[event] for event in Event if event in counts}
    return Standing(ordered, {e: weights[e] for e in ordered}, penalty, excluded, last)


class Book:
    """Every peer's observations, as read from the store for one job (and added to as it runs)."""

    def __init__(self, observations: Mapping[str, Sequence[Observation]], policy: ReputationPolicy) -> None:
        self._seen: dict[str, Sequence[Observation]] = dict(observations)  # a peer's list is copied on add only
        self.policy = policy

    def add(self, observations: Iterable[Observation]) -> None:
        for seen in observations:
            self._seen[seen.peer] = [*self._seen.get(seen.peer, ()), seen]

    def standing(self, peer: str, now: float) -> Standing:
        return assess(self._seen.get(peer, ()), now, self.policy)

    def ranked(self, now: float) -> list[tuple[str, Standing]]:
        """Every peer with a record, best first (lowest penalty; ties by peer ID)."""
        standings = [(peer, self.standing(peer, now)) for peer in self._seen]
        return sorted(standings, key=lambda pair: (pair[1].excluded, pair[1].penalty, pair[0]))


def appended(existing: Any, new: list[Observation]) -> list[list[Any]]:
    """A peer's stored list with ``new`` added, the newest MAX_EVENTS_PER_PEER kept."""
    kept = existing if isinstance(existing, list) else []
    combined = [*kept, *(seen.to_record() for seen in new)]
    return combined[-MAX_EVENTS_PER_PEER:]
