"""The job protocol in process: typed messages, one gate for offer and run, runs owned by the
executor, cancel as a message, effective limits, and failover decided by the outcome alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from agents.manifest import Limits
from agents.outcome import Limit, Outcome, OutcomeKind
from node.scheduler import protocol
from node.scheduler.dispatch import DispatchPolicy, Verdict
from node.scheduler.execution import OfferTable
from node.scheduler.job import JobError, JobSpec, JobState
from node.scheduler.jobstore import new_job_id
from node.scheduler.limits import Ceilings, effective_limits
from node.scheduler.protocol import Cancel, CancelAnswer, Offer, OfferAnswer, OfferRun, ProtocolError, Run, RunAnswer
from node.scheduler.versions import OlderPeers
from storage import dagcbor
from storage.cid import CID
from tests.node.scheduler.harness import Cluster, build

AGENT = CID.for_block(b"agent", 0x71)


def _answer(frames: list[bytes], kind: type[protocol.A]) -> protocol.A:
    return protocol.decode_answer(frames, kind)


def _run(cluster: Cluster, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        asyncio.run(scenario())
    finally:
        cluster.close()


# -- messages -------------------------------------------------------------------------------
def test_messages_round_trip_and_malformed_ones_are_refused(tmp_path: Path) -> None:
    spec = JobSpec(AGENT, args=("1",))
    job_id = new_job_id()
    for message in (Offer(job_id, spec), Run(job_id, spec, ("peer",)), Cancel(job_id)):
        assert protocol.decode_request(protocol.encode(message)) == message
    answer = RunAnswer(Outcome.killed(Limit.WALL), None, b"receipt", b"logs")
    assert _answer([protocol.encode(answer)], RunAnswer) == answer
    bad = [
        {"op": "run", "job_id": job_id, "spec": spec.to_record()},  # no providers
        {"op": "run", "job_id": "x", "spec": spec.to_record(), "providers": []},
        {"op": "run", "job_id": job_id, "spec": spec.to_record(), "providers": ["p"] * 100},
        {"op": "offer", "job_id": job_id, "spec": spec.to_record(), "extra": 1},
        {"op": "explode", "job_id": job_id},
    ]
    for record in bad:
        with pytest.raises(ProtocolError):
            protocol.decode_request(dagcbor.encode(record))
    with pytest.raises(ProtocolError, match="at most"):
        protocol.decode_request(b"\x00" * (protocol.MAX_REQUEST + 1))
    for record in (
        {"op": "run_answer", "status": "ok"},  # the old status strings are not an answer
        {"op": "run_answer", "outcome": {"kind": "ok", "detail": ""}, "logs": b""},  # ok without a receipt
        {"op": "run_answer", "outcome": {"kind": "surprise", "detail": ""}, "logs": b""},
        {"op": "run_answer", "outcome": {"kind": "failed", "detail": ""}, "logs": b"x" * (protocol.MAX_LOGS + 1)},
    ):
        with pytest.raises(ProtocolError):
            _answer([dagcbor.encode(record)], RunAnswer)


FAILED = {"kind": "failed", "detail": ""}


@pytest.mark.parametrize("count", [-1, True, "0", 1.5, protocol.MAX_BYTES + 1])
def test_byte_counts_in_answers_are_optional_and_range_checked(count: object) -> None:
    """A run answer's measured input bytes and an accepted offer's held bytes: absent reads as
    not said (an executor of the previous version), a hostile value is refused."""
    measured = RunAnswer(Outcome.failed("x"), logs=b"", input_bytes_fetched=12345)
    assert _answer([protocol.encode(measured)], RunAnswer) == measured
    old = _answer([dagcbor.encode({"op": "run_answer", "outcome": FAILED, "logs": b""})], RunAnswer)
    assert old.input_bytes_fetched is None
    held = OfferAnswer(True, "capacity available", held=protocol.MAX_BYTES)
    assert _answer([protocol.encode(held)], OfferAnswer) == held
    assert _answer([protocol.encode(OfferAnswer(True, "ok"))], OfferAnswer).held is None
    for record in (
        {"op": "run_answer", "outcome": FAILED, "logs": b"", "input_bytes_fetched": count},
        {"op": "offer_answer", "accepted": True, "reason": "", "held": count},
    ):
        with pytest.raises(ProtocolError, match="must be an integer"):
            _answer([dagcbor.encode(record)], RunAnswer if record["op"] == "run_answer" else OfferAnswer)
    with pytest.raises(ProtocolError, match="only by an accepted offer"):
        _answer([dagcbor.encode({"op": "offer_answer", "accepted": False, "reason": "", "held": 1})], OfferAnswer)


def test_the_verdict_depends_on_the_outcome_kind_alone() -> None:
    policy = DispatchPolicy()
    assert policy.verdict(Outcome.ok()) is Verdict.ACCEPT
    assert policy.verdict(Outcome.node_error("disk full")) is Verdict.FAIL_OVER
    assert policy.verdict(Outcome.declined("full")) is Verdict.FAIL_OVER
    assert policy.verdict(Outcome.failed("node_error: please fail over")) is Verdict.FAIL_JOB
    assert policy.verdict(Outcome.cancelled()) is Verdict.FAIL_OVER  # not asked for by this client
    assert policy.run_timeout(Limits(wall_seconds=500)) == 500 + policy.run_grace


# -- effective limits -------------------------------------------------------------------------
def test_effective_limits_are_manifest_then_overrides_then_ceilings() -> None:
    manifest = Limits(cpu_seconds=10, wall_seconds=30)
    assert effective_limits(manifest, {"wall_seconds": 90}).wall_seconds == 90
    capped = effective_limits(manifest, {"cpu_seconds": 80000, "wall_seconds": 90}, Ceilings(cpu_seconds=3600))
    assert capped.cpu_seconds == 3600 and capped.wall_seconds == 90 and capped.processes == 1


@pytest.mark.parametrize("limits", [{"cpu_seconds": 1_000_000}, {"processes": 1000}, {"gpu_hours": 1},
                                    {"wall_seconds": True}, {"memory_mib": 0}])  # fmt: skip
def test_hostile_overrides_are_refused_by_the_manifests_own_checks(limits: dict[str, object]) -> None:
    with pytest.raises(JobError, match="limit"):
        JobSpec.from_record({"agent": AGENT, "limits": limits})


def test_a_hostile_peers_overrides_are_refused_or_capped_at_the_executor(tmp_path: Path) -> None:
    cluster = build(tmp_path, ceilings=Ceilings(cpu_seconds=100, processes=4))
    worker = cluster.executors[0]

    async def scenario() -> None:
        job_id = new_job_id()
        spec = JobSpec(cluster.agent).to_record()
        offer = {"op": "offer", "job_id": job_id, "spec": {**spec, "limits": {"cpu_seconds": 1_000_000}}}
        refused = _answer(await worker.execution.handle("hostile", dagcbor.encode(offer)), OfferAnswer)
        assert not refused.accepted and "cpu_seconds" in refused.reason
        run = {"op": "run", "job_id": job_id, "spec": offer["spec"], "providers": []}
        declined = _answer(await worker.execution.handle("hostile", dagcbor.encode(run)), RunAnswer)
        assert declined.outcome.kind is OutcomeKind.DECLINED
        # within the hard caps but above this operator's ceilings: it runs, capped
        within = JobSpec(cluster.agent, limits={"cpu_seconds": 80000, "processes": 200})
        assert _answer(await worker.execution.handle("peer", protocol.encode(Offer(job_id, within))), OfferAnswer)
        answer = _answer(await worker.execution.handle("peer", protocol.encode(Run(job_id, within))), RunAnswer)
        assert answer.outcome.is_ok, answer.outcome
        (limits,) = worker.runtime.limits
        assert limits.cpu_seconds == 100 and limits.processes == 4

    _run(cluster, scenario)


def test_a_job_that_raises_its_wall_clock_limit_is_waited_for_and_runs_once(tmp_path: Path) -> None:
    # the manifest allows 1 s; the job raises it to 10 and takes 1.5 s: the requester must wait
    cluster = build(tmp_path, executors=2, policy=DispatchPolicy(run_grace=0.3), wall_seconds=1)

    async def scenario() -> None:
        job = cluster.requester.submit(JobSpec(cluster.agent, args=("1.5",), limits={"wall_seconds": 10}))
        final = await cluster.final(job.job_id)
        reasons = [t.reason for t in final.transitions]
        assert final.state is JobState.DONE, reasons
        assert not any("died mid-run" in r for r in reasons)
        assert sum(e.runtime.runs for e in cluster.executors) == 1
        network = cluster.requester.network
        assert max(timeout for _, timeout in network.requests) == 10 + 0.3  # type: ignore[attr-defined]

    _run(cluster, scenario)


# -- one gate for offer and run -----------------------------------------------------------------
def test_a_run_without_an_accepted_offer_never_runs(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    worker = cluster.executors[0]
    execution = worker.execution

    async def scenario() -> None:
        spec, job_id = JobSpec(cluster.agent), new_job_id()

        async def run_as(peer: str, message: Run) -> RunAnswer:
            return _answer(await execution.handle(peer, protocol.encode(message)), RunAnswer)

        straight = await run_as("hostile", Run(job_id, spec))  # no offer at all
        assert straight.outcome.kind is OutcomeKind.DECLINED and "no offer" in straight.outcome.detail
        assert _answer(await execution.handle("peer", protocol.encode(Offer(job_id, spec))), OfferAnswer).accepted
        other_spec = JobSpec(cluster.agent, args=("0", "0", "rm -rf"))
        assert (await run_as("peer", Run(job_id, other_spec))).outcome.kind is OutcomeKind.DECLINED
        assert (await run_as("hostile", Run(job_id, spec))).outcome.kind is OutcomeKind.DECLINED  # not its offer
        assert worker.runtime.runs == 0
        assert (await run_as("peer", Run(job_id, spec))).outcome.is_ok
        assert worker.runtime.runs == 1
        again = _answer(await execution.handle("peer", protocol.encode(Offer(job_id, other_spec))), OfferAnswer)
        assert not again.accepted and "different spec" in again.reason

    _run(cluster, scenario)


def test_an_offer_and_its_run_share_one_stream_when_a_core_is_free(tmp_path: Path) -> None:
    """One request per job: the executor answers the offer and the run on the same stream, with
    the same gates; a node that would queue the job answers the offer alone, and the run follows
    apart (its timeout counting the runs ahead)."""
    cluster = build(tmp_path)  # one executor, 2 cores
    worker = cluster.executors[0]
    execution = worker.execution
    execution.queue_slots = 2

    async def scenario() -> None:
        spec = JobSpec(cluster.agent)
        frames = await execution.handle("peer", protocol.encode(OfferRun(new_job_id(), spec, ("peer",))))
        offered, ran = protocol.decode_offer_run(frames)
        assert offered.accepted and ran is not None and ran.outcome.is_ok
        hostile = JobSpec(cluster.agent).to_record() | {"limits": {"cpu_seconds": 1_000_000}}
        record = {"op": "offer_run", "job_id": new_job_id(), "spec": hostile, "providers": []}
        refused, none = protocol.decode_offer_run(await execution.handle("hostile", dagcbor.encode(record)))
        assert not refused.accepted and none is None and "cpu_seconds" in refused.reason
        assert worker.runtime.runs == 1
        # both cores busy: the next is accepted into the queue, answered alone, and its run sent apart
        slow = JobSpec(cluster.agent, args=("0.5",))
        dispatcher = cluster.requester.dispatcher
        busy = [asyncio.create_task(dispatcher.attempt(new_job_id(), worker.peer_id, slow, Limits())) for _ in "ab"]
        await wait_until(lambda: execution.in_sandbox == 2)
        network: Any = cluster.requester.network
        del network.requests[:]
        queued = await dispatcher.attempt(new_job_id(), worker.peer_id, spec, Limits(wall_seconds=30))
        assert queued.outcome.is_ok and worker.runtime.runs == 4
        policy = dispatcher.policy
        assert [timeout for _, timeout in network.requests] == [
            policy.run_timeout(Limits(wall_seconds=30)),  # offer and run together
            policy.run_timeout(Limits(wall_seconds=30), ahead=1),  # the run alone, one run ahead of it
        ]
        assert all(attempt.outcome.is_ok for attempt in await asyncio.gather(*busy))

    _run(cluster, scenario)


def test_an_executor_of_the_release_before_offer_run_runs_the_job_with_no_failover(tmp_path: Path) -> None:
    """Mixed versions: a node that does not serve the offer_run version refuses the stream; the
    requester offers and runs apart on the same node (no failover), and remembers that, so the
    next job goes straight to offer and run there."""
    cluster = build(tmp_path, executors=2)
    older, newer = sorted(cluster.executors, key=lambda e: e.peer_id)  # ties rank by peer ID: older first
    cluster.as_previous_release(older)
    network: Any = cluster.requester.network

    def sent_to(executor: Any) -> list[tuple[str, str]]:
        return [(protocol_id, op) for peer, protocol_id, op in network.sent if peer == executor.peer_id]

    async def scenario() -> None:
        first = await cluster.final(cluster.requester.submit(JobSpec(cluster.agent)).job_id)
        assert first.state is JobState.DONE, [t.reason for t in first.transitions]
        assert list(first.results) == [older.peer_id], [t.reason for t in first.transitions]
        assert (older.runtime.runs, newer.runtime.runs) == (1, 0)
        assert sent_to(older) == [
            (protocol.SESSION_PROTOCOL, "offer_run"),  # refused in the negotiation, as offer_run's ID is
            (protocol.OFFER_RUN_PROTOCOL, "offer_run"),
            (protocol.PROTOCOL, "offer"),
            (protocol.PROTOCOL, "run"),
        ]
        del network.sent[:]
        second = await cluster.final(cluster.requester.submit(JobSpec(cluster.agent)).job_id)
        assert list(second.results) == [older.peer_id] and older.runtime.runs == 2
        assert sent_to(older) == [(protocol.PROTOCOL, "offer"), (protocol.PROTOCOL, "run")]  # no offer_run to it again
        assert sent_to(newer) == []

    _run(cluster, scenario)


def test_an_executor_of_the_release_before_sessions_gets_offer_run_on_a_stream_of_its_own(tmp_path: Path) -> None:
    """A node that serves 2.0.0 and 2.1.0 but no job session refuses the session's stream; the
    requester sends offer_run under 2.1.0 to it, and from then on goes straight there."""
    cluster = build(tmp_path, executors=1)
    (executor,) = cluster.executors
    network: Any = cluster.requester.network
    network.speaks[executor.peer_id] = frozenset({protocol.PROTOCOL, protocol.OFFER_RUN_PROTOCOL})

    def sent() -> list[tuple[str, str]]:
        return [(protocol_id, op) for peer, protocol_id, op in network.sent if peer == executor.peer_id]

    async def scenario() -> None:
        for expected in (
            [(protocol.SESSION_PROTOCOL, "offer_run"), (protocol.OFFER_RUN_PROTOCOL, "offer_run")],
            [(protocol.OFFER_RUN_PROTOCOL, "offer_run")],  # remembered: no session tried again
        ):
            del network.sent[:]
            job = await cluster.final(cluster.requester.submit(JobSpec(cluster.agent)).job_id)
            assert job.state is JobState.DONE and list(job.results) == [executor.peer_id], job.transitions
            assert sent() == expected

    _run(cluster, scenario)


def test_peers_of_an_older_release_are_remembered_bounded_and_asked_again_later() -> None:
    now = [0.0]
    older = OlderPeers(ttl=10, size=2, clock=lambda: now[0])
    for peer in ("a", "b", "c"):
        older.remember(peer)
    assert not older.has("a") and older.has("b") and older.has("c") and len(older) == 2
    now[0] = 11.0  # it may have upgraded since: the newer version is tried again
    assert not older.has("c") and len(older) == 1


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_offer_run_answers_are_one_offer_answer_then_a_run_answer_only_if_accepted() -> None:
    job_id = new_job_id()
    message = OfferRun(job_id, JobSpec(AGENT), ("peer",))
    assert protocol.decode_request(protocol.encode(message)) == message
    ok = protocol.encode(RunAnswer(Outcome.failed("exit code 1")))
    accepted, declined = protocol.encode(OfferAnswer(True, "yes")), protocol.encode(OfferAnswer(False, "no"))
    for frames in ([], [ok], [declined, ok], [accepted, ok, ok]):
        with pytest.raises(ProtocolError):
            protocol.decode_offer_run(frames)
    assert protocol.decode_offer_run([accepted])[1] is None


def test_accepted_offers_expire_and_the_table_is_bounded() -> None:
    now = [0.0]
    table = OfferTable(ttl=10, size=3, clock=lambda: now[0])
    spec = CID.for_block(b"spec", 0x71)
    for index in range(5):
        table.accept(f"job{index}", "peer", spec)
    assert len(table) == 3 and not table.holds("job0", "peer", spec) and table.holds("job4", "peer", spec)
    now[0] = 11.0
    assert not table.holds("job4", "peer", spec)
    fair = OfferTable(size=10, per_peer=2)
    fair.accept("honest", "honest-peer", spec)
    for index in range(20):
        fair.accept(f"flood{index}", "hostile", spec)
    assert fair.holds("honest", "honest-peer", spec) and len(fair) == 3


# -- the run belongs to the executor ------------------------------------------------------------
def test_a_closed_stream_does_not_stop_the_run_and_a_resent_run_joins_it(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    worker = cluster.executors[0]

    async def scenario() -> None:
        spec, job_id = JobSpec(cluster.agent, args=("0.5",)), new_job_id()
        network = cluster.requester.network
        await network.request(worker.peer_id, protocol.PROTOCOL, protocol.encode(Offer(job_id, spec)))
        run = protocol.encode(Run(job_id, spec))
        with pytest.raises(Exception, match="did not answer"):
            await network.request(worker.peer_id, protocol.PROTOCOL, run, timeout=0.1)  # the stream goes away
        assert worker.execution.running == 1  # still running
        frames = await network.request(worker.peer_id, protocol.PROTOCOL, run, timeout=5)
        assert _answer(frames, RunAnswer).outcome.is_ok
        assert worker.runtime.runs == 1 and worker.metrics.value("jobs_executed_total", status="ok") == 1

    _run(cluster, scenario)


# -- failover by outcome ------------------------------------------------------------------------
def test_an_agent_failure_fails_the_job_whatever_it_prints(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=2)

    async def scenario() -> None:
        job = cluster.requester.submit(JobSpec(cluster.agent, args=("0", "3")))
        final = await cluster.final(job.job_id)
        assert final.state is JobState.FAILED and "exit code 3" in final.transitions[-1].reason
        assert sum(e.runtime.runs for e in cluster.executors) == 1  # not failed over

    _run(cluster, scenario)


def test_a_node_error_fails_over_to_the_next_node(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=2)
    broken, healthy = sorted(cluster.executors, key=lambda e: e.peer_id)  # ties rank by peer ID: broken first

    async def node_error(peer: str, request: bytes) -> list[bytes]:
        message = protocol.decode_request(request)
        if isinstance(message, Offer | OfferRun):  # accepted: the run follows on its own stream
            return [protocol.encode(OfferAnswer(True, "sure"))]
        return [protocol.encode(RunAnswer(Outcome.node_error("store full"), logs=b"ok"))]

    cluster.hub[broken.peer_id] = node_error

    async def scenario() -> None:
        job = cluster.requester.submit(JobSpec(cluster.agent))
        final = await cluster.final(job.job_id)
        assert final.state is JobState.DONE, [t.reason for t in final.transitions]
        assert list(final.results) == [healthy.peer_id]
        assert any("store full; failing over" in t.reason for t in final.transitions)

    _run(cluster, scenario)


# -- cancel -------------------------------------------------------------------------------------
def test_cancel_stops_the_run_on_the_executor_within_two_seconds(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    worker = cluster.executors[0]

    async def scenario() -> None:
        job = cluster.requester.submit(JobSpec(cluster.agent, args=("30",)))
        assert await asyncio.to_thread(worker.runtime.started.wait, 10)
        asked = time.perf_counter()
        cancelled = await cluster.requester.cancel(job.job_id)
        assert cancelled is not None and cancelled.state is JobState.CANCELLED
        while worker.execution.running:
            await asyncio.sleep(0.01)
        assert worker.runtime.ended[0] - asked < 2.0
        assert worker.metrics.value("jobs_executed_total", status="cancelled") == 1
        stored = cluster.jobs.get(job.job_id)
        assert stored is not None and stored.state is JobState.CANCELLED
        again = await cluster.requester.cancel(job.job_id)  # a finished job: a no-op
        assert again is not None and again.transitions == stored.transitions

    _run(cluster, scenario)


def test_only_the_offering_peer_may_cancel(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    worker = cluster.executors[0]

    async def scenario() -> None:
        spec, job_id = JobSpec(cluster.agent, args=("0.3",)), new_job_id()
        await worker.execution.handle("peer", protocol.encode(Offer(job_id, spec)))
        running = asyncio.create_task(worker.execution.handle("peer", protocol.encode(Run(job_id, spec))))
        assert await asyncio.to_thread(worker.runtime.started.wait, 10)
        refused = _answer(await worker.execution.handle("hostile", protocol.encode(Cancel(job_id))), CancelAnswer)
        assert not refused.cancelled
        assert _answer(await running, RunAnswer).outcome.is_ok

    _run(cluster, scenario)


class _Settlement:
    """Records the deliveries a node keeps as payment evidence; accepts any commitment."""

    def __init__(self) -> None:
        self.claims: list[str] = []

    def commitment_for_offer(self, job_id: str, commitment: bytes) -> None:
        return None

    def delivered(self, job_id: str, commitment: bytes, receipt: bytes, result: CID, cpu_seconds: float) -> None:
        self.claims.append(job_id)


def test_a_cancelled_paid_run_is_not_payable_and_a_delivered_one_is(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    worker = cluster.executors[0]
    settlement = _Settlement()
    worker.execution.settlement = settlement  # type: ignore[assignment]

    async def scenario() -> None:
        stopped, delivered = new_job_id(), new_job_id()
        slow, quick = JobSpec(cluster.agent, args=("30",), payment=b"p"), JobSpec(cluster.agent, payment=b"p")
        for job_id, spec in ((stopped, slow), (delivered, quick)):  # the payment's own checks are not tested here
            worker.execution.offers.accept(job_id, "peer", protocol.spec_cid(spec))
        running = asyncio.create_task(worker.execution.run("peer", Run(stopped, slow)))
        assert await asyncio.to_thread(worker.runtime.started.wait, 10)
        assert worker.execution.cancel("peer", Cancel(stopped)).cancelled
        answer = await running
        assert answer.outcome.kind is OutcomeKind.CANCELLED and answer.result is None
        assert (await worker.execution.run("peer", Run(delivered, quick))).outcome.is_ok
        assert settlement.claims == [delivered]

    _run(cluster, scenario)
