"""Reputation: scoring and decay with an injected clock, the LMDB record across a reopen, the
placement rule, the outcomes a requester observes (in-process, over the loopback network),
and GET /v1/reputation. The real-process cases (a rogue caught at k=2, a node SIGKILLed
mid-run, a requester restart) are in test_corroboration_cluster.py and test_failures.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.manifest import Limits
from agents.outcome import Outcome
from node.api import reputation as reputation_routes
from node.api.errors import SERVICE_KEY, error_middleware
from node.errors import ConfigError
from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.dispatch import Attempt
from node.scheduler.job import JobRecord, JobSpec
from node.scheduler.jobstore import JobStore
from node.scheduler.placement import decide
from node.scheduler.reputation import (
    MAX_EVENTS_PER_PEER,
    NEUTRAL,
    PENALTY_SECONDS,
    Book,
    Event,
    Observation,
    ReputationPolicy,
    assess,
)
from node.scheduler.rules import reputation as rule
from node.scheduler.verify import Evidence, Judgement, Referee, Verified
from storage.cid import CID
from tests.node.scheduler.harness import build

DAY = 86400.0
NOW = 1_000_000.0
POLICY = ReputationPolicy(half_life=DAY)
CONTEXT = PlacementContext("wasm", False, (), 1 << 20)


def _seen(peer: str, *events: tuple[Event, float]) -> list[Observation]:
    return [Observation(peer, event, at, "j" * 32) for event, at in events]


def _node(name: str, standing: Any = NEUTRAL, **changes: Any) -> Candidate:
    return Candidate(name, "eu", ("wasm",), 2, standing=standing, **changes)


# -- scoring and decay -------------------------------------------------------------------
def test_an_event_weighs_half_as_much_each_half_life() -> None:
    fresh = assess(_seen("p", (Event.DIED, NOW)), NOW, POLICY)
    assert fresh.penalty == PENALTY_SECONDS[Event.DIED] and fresh.counts == {Event.DIED: 1}
    for age, factor in ((DAY, 0.5), (2 * DAY, 0.25), (10 * DAY, 2**-10)):
        aged = assess(_seen("p", (Event.DIED, NOW)), NOW + age, POLICY)
        assert aged.penalty == pytest.approx(PENALTY_SECONDS[Event.DIED] * factor)
        assert aged.counts == {Event.DIED: 1}  # kept, only weighed less
    assert assess(_seen("p", (Event.DIED, NOW + 50)), NOW, POLICY).penalty == PENALTY_SECONDS[Event.DIED]
    shorter = ReputationPolicy(half_life=3600.0)  # configurable: the same event fades faster
    assert assess(_seen("p", (Event.DIED, NOW)), NOW + 3600, shorter).penalty == pytest.approx(300.0)


def test_recent_failures_rank_a_node_below_an_old_one_and_a_steady_one() -> None:
    recent = assess(_seen("r", (Event.DIED, NOW - 60)), NOW, POLICY)
    old = assess(_seen("o", (Event.DIED, NOW - 7 * DAY)), NOW, POLICY)
    steady = assess(_seen("s", *[(Event.COMPLETED, NOW - i) for i in range(5)]), NOW, POLICY)
    assert recent.penalty > old.penalty > steady.penalty == 0.0  # credit never beats a stranger's zero
    book = Book({"r": _seen("r", (Event.DIED, NOW - 60)), "s": _seen("s", (Event.COMPLETED, NOW))}, POLICY)
    assert [peer for peer, _ in book.ranked(NOW)] == ["s", "r"]
    # credit earned by matching work offsets a decline, not a lie
    mixed = assess(_seen("m", (Event.DECLINED, NOW), (Event.MATCHED, NOW)), NOW, POLICY)
    assert mixed.penalty == 0.0
    liar = assess(_seen("l", (Event.DISAGREED, NOW), *[(Event.MATCHED, NOW)] * 10), NOW, POLICY)
    assert liar.penalty == PENALTY_SECONDS[Event.DISAGREED] - 10 * 30.0


def test_repeated_recent_lies_exclude_and_fade_back_to_ranked_down() -> None:
    lies = _seen("l", *[(Event.DISAGREED, NOW)] * 3)
    assert assess(lies, NOW, POLICY).excluded
    assert not assess(lies[:2], NOW, POLICY).excluded  # two lies: ranked down, still placeable
    later = assess(lies, NOW + DAY, POLICY)  # 1.5 after decay: below exclude_at again
    assert not later.excluded and later.penalty == pytest.approx(1.5 * 3600)
    refused = rule.check(_node("l", assess(lies, NOW, POLICY)), CONTEXT)
    assert refused is not None and "judged wrong 3 time(s)" in refused and "/v1/reputation" in refused
    assert rule.check(_node("h"), CONTEXT) is None


@pytest.mark.parametrize("half_life", [0.0, -1.0, float("nan"), float("inf")])
def test_a_nonsense_half_life_is_a_config_error(half_life: float) -> None:
    with pytest.raises(ConfigError, match="half-life must be a positive number"):
        ReputationPolicy(half_life=half_life)


def test_placement_explains_the_record_and_ranks_by_it() -> None:
    died = assess(_seen("flaky", (Event.DIED, NOW), (Event.COMPLETED, NOW)), NOW, POLICY)
    liars = assess(_seen("liar", *[(Event.DISAGREED, NOW)] * 3), NOW, POLICY)
    candidates = [_node("flaky", died, held_bytes=1 << 20), _node("steady"), _node("liar", liars, held_bytes=1 << 20)]
    decision = decide(candidates, CONTEXT)
    assert decision.chosen == ["steady"] and decision.ranked == ["steady", "flaky"]  # the data does not outweigh it
    reasons = {r["peer_id"]: r for r in decision.reasons}
    assert reasons["liar"]["verdict"] == "refused" and "judged wrong" in reasons["liar"]["reason"]
    assert "record: 1 completed, 1 died (+595 s)" in reasons["flaky"]["reason"]
    assert reasons["flaky"]["reputation"]["counts"]["died"] == 1
    assert reasons["steady"]["reputation"]["penalty_seconds"] == 0.0


# -- the LMDB record ---------------------------------------------------------------------
def test_the_record_survives_a_reopen_and_stays_bounded(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    store.record_outcomes(_seen("a", (Event.COMPLETED, NOW), (Event.LATE, NOW + 1)))
    store.record_outcomes(_seen("a", *[(Event.DIED, NOW + 2 + i) for i in range(MAX_EVENTS_PER_PEER)]))
    store.record_outcomes(_seen("b", (Event.TIMED_OUT, NOW)))
    store.close()
    reopened = JobStore(tmp_path / "jobs")
    try:
        record = reopened.reputation()
        assert len(record["a"]) == MAX_EVENTS_PER_PEER  # the newest kept
        assert {seen.event for seen in record["a"]} == {Event.DIED}
        assert record["b"] == _seen("b", (Event.TIMED_OUT, NOW))
    finally:
        reopened.close()


def _evidence(at: float) -> Evidence:
    results = {peer: Verified(peer, CID.for_block(peer.encode(), 0x55), b"signed", CID.for_block(b"r", 0x71))
               for peer in ("honest", "rogue")}  # fmt: skip
    judgement = Judgement(results["honest"].result, ("honest",), ("rogue",), Referee.TRUSTED, "results disagree")
    return Evidence("e" * 32, "agent", at, {p: str(v.result) for p, v in results.items()},
                    {p: v.receipt for p, v in results.items()}, judgement.blamed, judgement.referee)  # fmt: skip


def test_placing_a_job_reads_the_record_from_memory_kept_in_step_with_the_disk(tmp_path: Path) -> None:
    """Each job's placement asks for every peer's record: the table is read when the store opens,
    then every write keeps the copy in memory equal to what a reopened store reads (a profile
    under 32 jobs in flight found the per-job scan and its decoding at ~7% of the requester's CPU)."""
    written_by_a_newer_release = JobStore(tmp_path / "jobs")
    written_by_a_newer_release._tables.put(
        "reputation", "future", {"peer": "future", "events": [["a newer kind", NOW, "j" * 32]]}
    )
    written_by_a_newer_release.close()
    store = JobStore(tmp_path / "jobs")
    try:
        store.record_outcomes(_seen("a", (Event.COMPLETED, NOW)))
        scans: list[str] = []
        values = store._tables.values
        store._tables.values = lambda table: scans.append(table) or values(table)  # type: ignore[method-assign]
        store.record_outcomes(_seen("a", (Event.LATE, NOW + 1)) + _seen("future", (Event.DIED, NOW + 2)))
        store.save_evidence(_evidence(NOW + 3))
        store.stage_outcomes(_seen("a", (Event.MATCHED, NOW + 4)))  # counts at once, written by the next commit
        assert [s.event for s in store.reputation_snapshot()["a"]][-1] is Event.MATCHED
        store.write_prepared([], store.take_staged_outcomes())
        for _ in range(3):
            live = store.reputation()
        assert scans == []  # neither the writes nor the reads scanned the table again
        assert [s.event for s in live["a"]] == [Event.COMPLETED, Event.LATE, Event.MATCHED]
        snapshot = store.reputation_snapshot()  # what placement reads on the loop: no lock, no thread
        assert {peer: list(seen) for peer, seen in snapshot.items()} == live
    finally:
        store.close()
    reopened = JobStore(tmp_path / "jobs")
    try:
        assert reopened.reputation() == live
        raw = reopened._tables.get("reputation", "future")["events"]
        assert raw[0] == ["a newer kind", NOW, "j" * 32]  # an entry this version cannot read is kept
    finally:
        reopened.close()


def test_evidence_is_a_disagreement_in_the_record_including_evidence_from_before_it(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    store.save_evidence(_evidence(NOW))
    assert [(s.peer, s.event, s.at) for s in store.reputation()["rogue"]] == [("rogue", Event.DISAGREED, NOW)]
    store._tables.write(lambda writer: writer.clear("reputation"))  # as a store written before the record was
    store.close()
    reopened = JobStore(tmp_path / "jobs")
    try:
        assert set(reopened.reputation()) == {"rogue"}  # rebuilt from the evidence kept
    finally:
        reopened.close()


@pytest.mark.parametrize("raw", [None, [], ["died", NOW], ["bragged", NOW, ""], ["died", "soon", ""], "died"])
def test_an_unreadable_stored_event_is_skipped(raw: Any) -> None:
    assert Observation.from_record("p", raw) is None


# -- outcomes observed by a requester -----------------------------------------------------
async def test_a_dead_node_and_a_late_one_are_recorded_and_ranked_below_the_good_one(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=3, wall_seconds=1)
    try:
        service = cluster.requester
        service.clock = lambda: NOW
        dead, late, good = sorted(e.peer_id for e in cluster.executors)  # ties rank by peer ID: dead is tried first
        del cluster.hub[dead]  # unreachable: the dispatch fails at once
        job = service.submit(JobSpec(cluster.agent, args=("0",)))
        assert (await cluster.final(job.job_id)).results.keys() == {late}  # late ranked next; instant this time
        assert [s.event for s in cluster.jobs.reputation()[dead]] == [Event.DIED]
        again = service.submit(JobSpec(cluster.agent, args=("1.3",)))  # past the 1 s wall limit: answered late
        done = await cluster.final(again.job_id)
        assert list(done.results) == [late]  # late is still the best ranked; died ranks last
        assert [s.event for s in cluster.jobs.reputation()[late]] == [Event.COMPLETED, Event.COMPLETED, Event.LATE]
        third = await cluster.final(service.submit(JobSpec(cluster.agent, args=("0",))).job_id)
        assert list(third.results) == [good]  # late now costs 60 s: the stranger goes first
        ranked = {r["peer_id"]: r["rank"] for r in third.placement if r["verdict"] != "refused"}
        assert ranked == {good: 1, late: 2, dead: 3}
        assert service.network.peer_id not in cluster.jobs.reputation()  # it never rates itself
    finally:
        await cluster.requester.stop()
        cluster.close()


async def test_declines_timeouts_and_agent_failures_map_to_typed_events(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=1)
    try:
        service, peer = cluster.requester, cluster.executors[0].peer_id
        job = JobRecord("a" * 32, JobSpec(cluster.agent))
        limits = Limits(wall_seconds=5)
        timeout = service.policy.run_timeout(limits)
        verified = Verified(peer, CID.for_block(b"x", 0x55), b"r", CID.for_block(b"r", 0x71))
        cases = [
            (Attempt(peer, Outcome.declined("full")), 0.1, [Event.DECLINED]),
            (Attempt(peer, Outcome.node_error("connection closed")), 0.1, [Event.DIED]),
            (Attempt(peer, Outcome.node_error("no answer")), timeout, [Event.TIMED_OUT]),
            (Attempt(peer, Outcome.failed("exit code 3")), 0.1, []),  # the agent's fault, not the node's
            (Attempt(peer, Outcome.cancelled()), 0.1, []),
            (verified, 1.0, [Event.COMPLETED]),
            (verified, 6.0, [Event.COMPLETED, Event.LATE]),
        ]
        for checked, elapsed, expected in cases:
            assert [event for _, event, _ in service._events(job, checked, elapsed, limits)] == expected
    finally:
        cluster.close()


# -- GET /v1/reputation --------------------------------------------------------------------
@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], JobStore, Any]]:
    store = JobStore(tmp_path / "jobs")
    service = SimpleNamespace(jobs=store, job_service=SimpleNamespace(reputation=POLICY, clock=lambda: NOW))
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE_KEY] = service  # type: ignore[misc]
    app.add_routes(reputation_routes.routes())
    async with TestClient(TestServer(app)) as client:
        yield client, store, service
    store.close()


async def test_reputation_route_lists_peers_best_first(api: Any) -> None:
    client, store, service = api
    store.record_outcomes(_seen("flaky", (Event.DIED, NOW - DAY)) + _seen("steady", (Event.COMPLETED, NOW)))
    answer = await (await client.get("/v1/reputation")).json()
    assert answer["half_life_seconds"] == DAY and answer["exclude_at"] == POLICY.exclude_at
    assert [(p["peer_id"], p["rank"]) for p in answer["peers"]] == [("steady", 1), ("flaky", 2)]
    flaky = answer["peers"][1]
    assert flaky["counts"]["died"] == 1 and flaky["weights"]["died"] == 0.5 and flaky["penalty_seconds"] == 300.0
    assert flaky["last"] == NOW - DAY and flaky["excluded"] is False
    only = await (await client.get("/v1/reputation?peer=steady")).json()
    assert [p["peer_id"] for p in only["peers"]] == ["steady"]
    assert (await (await client.get("/v1/reputation?peer=nobody")).json())["peers"] == []
    long = await client.get("/v1/reputation?peer=" + "x" * 200)
    assert long.status == 400 and (await long.json())["error"] == "bad_query"
    service.job_service = None
    starting = await client.get("/v1/reputation")
    assert starting.status == 503 and (await starting.json())["error"] == "not_ready"


def test_a_peer_cannot_announce_its_own_reputation() -> None:
    from node.scheduler.candidates import from_announcement

    claimed = {"region": "eu", "runtimes": ["wasm"], "standing": {"penalty": -1e9}, "reputation": {"matched": 10**6},
               "mismatches": 0}  # fmt: skip
    assert from_announcement("boaster", claimed).standing is NEUTRAL
