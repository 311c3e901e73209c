"""A peer's reputation in memory grows by its new observations only (each was read from all of
the peer's entries again, per observation), and stays what reading its entries afresh gives."""

from __future__ import annotations

from node.scheduler.jobstore import _Kept
from node.scheduler.reputation import MAX_EVENTS_PER_PEER, Event, Observation, appended


def test_appending_matches_reading_the_entries_afresh_past_the_cap() -> None:
    peer = "12D3KooWPeer"
    unreadable = ["an", "entry", "of a later version", "!"]  # kept whole, read as nothing
    kept = _Kept.of(peer, [unreadable, Observation(peer, Event.COMPLETED, 1.0, "job-0").to_record()])
    events: list[object] = list(kept.events)
    for n in range(1, MAX_EVENTS_PER_PEER + 10):
        new = [Observation(peer, Event.COMPLETED, float(n), f"job-{n}")]
        kept = kept.appended(new)
        events = appended(events, new)
        fresh = _Kept.of(peer, events)
        assert (kept.events, kept.observations, kept.read) == (fresh.events, fresh.observations, fresh.read)
    assert len(kept.events) == MAX_EVENTS_PER_PEER and unreadable not in kept.events
