"""The requesting side: decide where a job runs, dispatch it with failover, verify the results.

The three steps are separate (:mod:`node.scheduler.decide`, :mod:`node.scheduler.dispatch`
with its :class:`~node.scheduler.dispatch.DispatchPolicy`, :mod:`node.scheduler.verify`);
this module only drives a job through them and records every state change, through
:meth:`JobService._move` alone, before anything else happens, so a restarted requester
resumes unfinished jobs (executors answer a repeated job id with the first run's result
instead of running it twice).

A job no node can take right now (every fitting node full, by its announcement or by its
typed ``busy`` answer) waits: it goes back to ``queued``, with the reason and its place
among this node's waiting jobs, and is placed again as soon as capacity appears (a peer's
announcement, sent on every change of its load, or a slot freeing on this node wakes it).
It fails only once it has waited its ``queue_timeout``. A job that no node could ever take
(no runtime, wrong region, price) fails at once, as before.

Cancelling (``DELETE /v1/jobs/{id}``) ends the job ``cancelled`` at once and sends the
protocol's cancel to every node running it; they stop the sandbox. A cancelled run
claims nothing; a run that had already finished with a receipt is claimed as usual
(see :mod:`node.scheduler.execution`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from agents.manifest import Limits
from agents.outcome import OutcomeKind
from contracts.errors import AuthorizationError
from contracts.payment import commitment_of
from node.announce import PeerTable
from node.exchange import BlockExchange
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from node.scheduler.candidates import Candidate, load_of
from node.scheduler.decide import Decider, Plan
from node.scheduler.dispatch import Attempt, Dispatcher, DispatchPolicy, Verdict
from node.scheduler.events import JobEvents
from node.scheduler.execution import JobExecution
from node.scheduler.group import GroupService
from node.scheduler.job import Checks, JobRecord, JobSpec, JobState
from node.scheduler.jobstore import JobStore, Prepared, new_job_id
from node.scheduler.placement import corrected, decide, refusal
from node.scheduler.reputation import Book, Event, Observation, ReputationPolicy
from node.scheduler.verify import Evidence, Judgement, Referee, Verified, check_receipt, judge

log = logging.getLogger("mycelnet.jobs")

STOP_WRITE_WAIT = 10.0  # seconds stop() gives the group commit of the last job changes
RESUME_WAIT = 20.0  # after a restart: time for the nodes chosen before it to be heard from again
QUEUE_TIMEOUT = 600.0  # seconds a job waits for capacity unless it says otherwise (config: jobs.queue_timeout_seconds)
QUEUE_RECHECK = 5.0  # a queued job looks again this often even if no change was heard (a lost announcement)


class CapacitySignal:
    """Wakes every queued job when capacity may have appeared; costs nothing while none waits."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


class JobService:
    def __init__(
        self,
        jobs: JobStore,
        network: P2PNetwork,
        exchange: BlockExchange,
        peers: PeerTable,
        local: JobExecution,
        own: Callable[[], Candidate],
        bound: Callable[[str, str], bool] | None = None,
        policy: DispatchPolicy | None = None,
        metrics: Metrics | None = None,
        reputation: ReputationPolicy | None = None,
        clock: Callable[[], float] = time.time,
        queue_timeout: float = QUEUE_TIMEOUT,
    ) -> None:
        self.jobs = jobs
        self.queue_timeout = queue_timeout
        self.metrics = metrics
        self.network = network
        self.exchange = exchange
        self.peers = peers
        self.local = local
        self.policy = policy or DispatchPolicy()
        self.reputation = reputation or ReputationPolicy()
        self.clock = clock  # when observations happen (tests inject one)
        self.decider = Decider(network, exchange, peers, own, bound)
        self.dispatcher = Dispatcher(network, local, self.policy)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._executing: dict[str, set[str]] = {}  # job id -> nodes running it now (cancel goes to them)
        self.events = JobEvents()
        self._finished: dict[str, list[asyncio.Future[JobRecord]]] = {}  # job id -> waiters for its end
        self.groups = GroupService(self)
        self.capacity = CapacitySignal()
        self._waiting: dict[str, None] = {}  # job ids waiting for capacity, in arrival order
        self._settled: dict[str, float] = {}  # peer -> when (unix time) a run of ours there last ended
        self._writer: asyncio.Task[None] | None = None  # the group commit of staged jobs, while one runs
        self._staged_count = 0  # jobs staged so far, and (below) written so far: persisted() compares them
        self._written_count = 0
        self._written = asyncio.Condition()

    # -- API ---------------------------------------------------------------------------
    def submit(
        self,
        spec: JobSpec,
        job_id: str | None = None,
        checks: Checks | None = None,
        *,
        at_holders_of: str = "",
        group: str = "",
        queue_timeout: float | None = None,
    ) -> JobRecord:
        """Start a job; ``at_holders_of`` (an input name) restricts it to that input's holders
        and ``group`` names the group job it is a run of (both kept by this node only)."""
        job = JobRecord(job_id or new_job_id(), spec, checks=checks or Checks(), at_holders_of=at_holders_of,
                        group=group, queue_timeout=queue_timeout)  # fmt: skip
        self._move(job, JobState.QUEUED, "submitted")
        self._start(job)
        return job

    async def persisted(self) -> None:
        """Return once every job change made so far is written and synced (the API answers a
        submission only then, so a job it accepted survives a crash)."""
        wanted = self._staged_count
        async with self._written:
            await self._written.wait_for(lambda: self._written_count >= wanted)

    def wake(self) -> None:
        """Capacity may have appeared (a peer re-announced, a local slot freed): queued jobs look again."""
        if self._waiting:
            self.capacity.notify()

    def resume_unfinished(self) -> int:
        unfinished = self.jobs.unfinished()
        for job in unfinished:
            self._start(job, resumed=True)
        self.groups.resume_unfinished()
        return len(unfinished)

    async def finished(self, job_id: str) -> JobRecord:
        """Wait for the job to reach a final state (no polling: ``_move`` wakes the waiters)."""
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        if job.state.final:
            return job
        waiter: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
        self._finished.setdefault(job_id, []).append(waiter)
        try:
            return await waiter
        finally:
            waiters = self._finished.get(job_id, [])
            if waiter in waiters:
                waiters.remove(waiter)

    async def cancel(self, job_id: str) -> JobRecord | None:
        """End the job ``cancelled`` and tell every node running it to stop; a finished job stays as it is."""
        job = self.jobs.get(job_id)
        if job is None or job.state.final:
            return job
        chosen = {r["peer_id"] for r in job.placement if r.get("verdict") == "chosen"}  # after a restart
        running_on = self._executing.pop(job_id, set()) | (chosen if job.state is JobState.RUNNING else set())
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        job = self.jobs.get(job_id) or job
        if not job.state.final:
            self._move(job, JobState.CANCELLED, "cancelled by the client")
        if running_on:
            answers = await self.dispatcher.cancel(job_id, running_on)
            log.info("job %s: cancel sent to %s", job_id, {p: a.reason for p, a in answers.items()})
        return job

    async def stop(self) -> None:
        await self.groups.stop()
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._writer is not None and not self._writer.done():  # what the jobs did last is written
            await asyncio.wait({self._writer}, timeout=STOP_WRITE_WAIT)
            self._writer.cancel()
        if self.jobs.staged:  # the writer failed or gave up: one last try, which raises if it fails
            self._write_now()

    # -- the job's life -------------------------------------------------------------------
    def _start(self, job: JobRecord, resumed: bool = False) -> None:
        task = asyncio.create_task(self._drive(job, resumed))
        self._tasks[job.job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.job_id, None))

    def _move(self, job: JobRecord, state: JobState, reason: str) -> None:
        job.move(state, reason)
        self._persist(job)
        if state.final and self.metrics is not None:  # submission to final state, by outcome
            self.metrics.job_finished(state.value, job.transitions[-1].at - job.transitions[0].at)

    def _persist(self, job: JobRecord) -> None:
        """Stage the job for the group commit. Its watchers (event stream, ``finished``) hear of
        the change once it is written, so a live event survives a crash of this node (a job
        read or subscribed to meanwhile is the live one, a few milliseconds ahead of the disk;
        a crash in between resumes the job from its last written state, which is safe: an
        executor answers a re-sent run from the run it already did).

        One LMDB commit (and its fsync) per transition, on the event loop, used to stall the
        loop and serialize every job behind the disk; now the transitions of all jobs that
        change while a commit is under way share the next one, written off the loop."""
        self.jobs.stage(job)
        self._staged_count += 1
        self._write_soon()

    def _write_soon(self) -> None:
        """Start the group commit of what is staged, unless one is under way (it takes it next)."""
        if self._writer is None or self._writer.done():
            try:
                self._writer = asyncio.get_running_loop().create_task(self._write_staged())
            except RuntimeError:  # no loop (a tool using the store directly): write at once
                self._write_now()

    async def _write_staged(self) -> None:
        while self.jobs.staged:
            batch = self._take_batch()
            try:
                await asyncio.to_thread(self.jobs.write_prepared, batch.records, batch.outcomes)
            except Exception as exc:  # the disk refused: keep the jobs staged and try again
                log.error("writing %d job record(s) failed, retrying: %s", len(batch.jobs), exc)
                for job, _ in batch.jobs:
                    self.jobs.stage(job)  # the live object: staging it again keeps its newest state
                self.jobs.restage_outcomes(batch.outcomes)
                await asyncio.sleep(1.0)
                continue
            self._announce_written(batch)

    def _write_now(self) -> None:
        batch = self._take_batch()
        self.jobs.write_prepared(batch.records, batch.outcomes)
        self._announce_written(batch)

    def _take_batch(self) -> _Batch:
        """The staged jobs for one commit, with the count of stagings they cover (taken on the loop,
        where the jobs change): the writer task and the synchronous write share it."""
        counted = self._staged_count
        return _Batch(counted, self.jobs.take_staged(), self.jobs.take_staged_outcomes())

    def _announce_written(self, batch: _Batch) -> None:
        """``batch`` is on disk: publish what each job had when it was taken, wake its waiters."""
        self.jobs.written([job for job, _ in batch.jobs])
        for job, (_, written) in batch.jobs:
            self.events.publish(job, written)  # the transitions on disk, not any made since
            if len(job.transitions) == written and job.state.final:
                for waiter in self._finished.pop(job.job_id, []):
                    if not waiter.done():
                        waiter.set_result(job)
        self._written_count = max(self._written_count, batch.counted)
        with contextlib.suppress(RuntimeError):  # no loop: nobody can be waiting
            asyncio.get_running_loop().create_task(self._notify_written())

    async def _notify_written(self) -> None:
        async with self._written:
            self._written.notify_all()

    async def _drive(self, job: JobRecord, resumed: bool = False) -> None:
        try:
            if resumed:
                await self._await_previous_nodes(job)
            await self._place_and_run(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # nothing is lost silently: the job says what happened
            log.exception("job %s", job.job_id)
            if not job.state.final:
                self._move(job, JobState.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._waiting.pop(job.job_id, None)

    async def _await_previous_nodes(self, job: JobRecord, timeout: float = RESUME_WAIT) -> None:
        """After a restart, give the nodes chosen before it time to be heard from again, so the
        job goes back to them (they answer a repeated job id with the run they already did)."""
        wanted = {r["peer_id"] for r in job.placement if r.get("verdict") == "chosen"} - {self.network.peer_id}
        deadline = asyncio.get_running_loop().time() + timeout
        while wanted - {record.peer_id for record in self.peers.alive()}:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.2)

    async def _place_and_run(self, job: JobRecord) -> None:
        spec = job.spec
        if job.state is not JobState.PLACING:
            self._move(job, JobState.PLACING, "looking for nodes near the data")
        try:
            payment = commitment_of(spec.payment, job.job_id) if spec.payment is not None else None
        except AuthorizationError as exc:
            self._move(job, JobState.FAILED, f"the job's payment is unusable: {exc}")
            return
        plan = await self.decider.plan(spec, payment, job.at_holders_of)
        book = Book(self.jobs.reputation_snapshot(), self.reputation)  # in memory: no table read, no thread
        trusted = frozenset(job.checks.trusted) | {self.network.peer_id}  # the requester trusts itself
        run = _Run(plan, book, self.clock)
        while True:
            if not await self._gather(job, run):
                return
            self._move(job, JobState.VERIFYING, f"{len(run.results)} result(s) to compare")
            judgement = judge(run.results, trusted)
            if judgement.referee is Referee.UNANIMOUS:
                break
            await self._record(job, run, judgement)
            if judgement.result is None:
                self._finish_failed(job, run, judgement.detail)
                return
            for peer in judgement.blamed:  # the referee decided: replace them and go on
                run.drop(peer, judgement.detail)
            self._move(job, JobState.PLACING, f"{judgement.detail}; replacing {', '.join(judgement.blamed)}")
        agreed = sorted(run.results)
        spot = await self._spot_check(job, run) if job.checks.drawn else _spot_not_drawn(job)
        if spot.get("outcome") == "disagreed":
            self._finish_failed(job, run, str(spot["detail"]), spot)
            return
        job.corroboration = _corroboration(job, run, agreed, spot)
        if len(job.corroboration["agreed"]) > 1:  # corroborated by another operator or a trusted node
            await self._observe(run, [(peer, Event.MATCHED, job.job_id) for peer in job.corroboration["agreed"]])
        for peer in run.disagreed:  # not the job's result, not paid: kept in the evidence
            job.results.pop(peer, None)
            job.receipts.pop(peer, None)
        self._move(job, JobState.DONE, f"{job.corroboration['summary']}: result {run.results[agreed[0]].result}")

    async def _gather(self, job: JobRecord, run: _Run) -> bool:
        """Dispatch, with failover, until ``redundancy`` nodes of distinct operators returned a
        verified result (True), or say in the job why not (False)."""
        spec = job.spec
        while len(run.results) < spec.redundancy:
            if (
                run.excluded
                and run.plan.context.input_bytes
                and not any(c.held_bytes for c in run.plan.candidates if c.peer_id not in run.excluded)
            ):  # failing over, and the view placed the input only on excluded nodes: ask the network
                found, _ = await self.decider.candidates(spec, search=True)
                run.replan(found)
            candidates = self._with_load(run.plan.candidates)
            decision = decide(candidates, run.plan.context.excluding(run.excluded | set(run.busy)), spec.redundancy)
            job.placement = decision.reasons  # saved by the move that follows (running, queued or failed)
            taken = {decision.operators.get(peer, peer) for peer in run.results}
            pending: list[str] = []
            wanted = spec.redundancy - len(run.results)
            for peer in decision.ranked:  # one node per operator: its other nodes count for nothing
                operator = decision.operators[peer]
                if peer not in run.results and operator not in taken and len(pending) < wanted:
                    taken.add(operator)
                    pending.append(peer)
            if len(run.excluded) + len(pending) > self.policy.max_attempts:
                pending = []
                run.refusals["policy"] = f"gave up after {self.policy.max_attempts} nodes"
            if not pending:
                why = decision.explanation + "".join(f"; {p}: {reason}" for p, reason in sorted(run.refusals.items()))
                why += "".join(f"; {p}: {reason}" for p, reason in sorted(run.busy.items()))
                if run.results:
                    why = f"only {len(run.results)} of {spec.redundancy} distinct operators could run it: {why}"
                if "policy" not in run.refusals and self._only_busy(run, candidates):
                    if await self._wait_for_capacity(job, run, why):
                        continue
                    why = f"no node had room within the queue timeout of {self._timeout_of(job):g} s: {why}"
                self._finish_failed(job, run, why)
                return False
            if job.state is JobState.QUEUED:
                self._waiting.pop(job.job_id, None)
                self._move(job, JobState.PLACING, "capacity appeared")
            self._move(job, JobState.RUNNING, f"dispatched to {', '.join(pending)}")
            for attempt, elapsed in await self._dispatch(job, pending, run.plan.limits):
                self._correct_placement(job, attempt, candidates, run.plan)
                checked = await self._checked(job, attempt)
                await self._observe(run, self._events(job, checked, elapsed, run.plan.limits))
                if isinstance(checked, Verified):
                    run.results[checked.peer] = checked
                    continue
                if checked.busy:  # full now, not broken: asked again once capacity appears
                    run.busy[checked.peer] = checked.outcome.label
                    self._move(job, JobState.PLACING, f"{checked.peer} {checked.outcome.label}; trying another node")
                    continue
                verdict = self.policy.verdict(checked.outcome)
                if verdict is Verdict.FAIL_JOB:  # the agent itself failed: another node would fail the same way
                    self._finish_failed(job, run, f"{checked.peer}: {checked.outcome.label}")
                    return False
                run.excluded.add(checked.peer)
                run.refusals[checked.peer] = checked.outcome.label
                log.info("job %s: %s %s; failing over", job.job_id, checked.peer, checked.outcome.label)
                why = f"{checked.peer} {checked.outcome.label}; failing over to the next node"
                self._move(job, JobState.PLACING, why)
        return True

    def _timeout_of(self, job: JobRecord) -> float:
        return job.queue_timeout if job.queue_timeout is not None else self.queue_timeout

    def _with_load(self, candidates: list[Candidate]) -> list[Candidate]:
        """Candidates with their load as it is now: the latest announcement of each, this node's
        own count, and never fewer jobs than this requester has in flight there (an announcement
        may predate them)."""
        latest = {record.peer_id: record for record in self.peers.alive()}
        in_flight: dict[str, int] = {}
        for peers in self._executing.values():
            for peer in peers:
                in_flight[peer] = in_flight.get(peer, 0) + 1
        own = self.decider.own()
        fresh = []
        for candidate in candidates:
            if candidate.peer_id == own.peer_id:
                running, queue = own.running_jobs, own.queue_slots
            elif candidate.peer_id in latest:
                record = latest[candidate.peer_id]
                running, queue = load_of(record.announcement)
                if self._settled.get(candidate.peer_id, 0.0) > record.last_seen:
                    running = 0  # a run of ours ended there since: its count is out of date, ask it

            else:
                running, queue = candidate.running_jobs, candidate.queue_slots
            running = max(running, in_flight.get(candidate.peer_id, 0))
            fresh.append(replace(candidate, running_jobs=running, queue_slots=queue))
        return fresh

    def _only_busy(self, run: _Run, candidates: list[Candidate]) -> bool:
        """Is capacity all the job lacks? Some node it could run on is full now (declined busy, or
        announced full), so waiting can help; a job no node could ever take fails instead."""
        if run.busy:
            return True
        context = run.plan.context.excluding(run.excluded)
        return any(
            refusal(candidate, context) is not None and refusal(replace(candidate, running_jobs=0), context) is None
            for candidate in candidates
        )

    async def _wait_for_capacity(self, job: JobRecord, run: _Run, why: str) -> bool:
        """Keep the job ``queued`` (saying why, and its place) until capacity may have appeared:
        True to place it again, False once it has waited its queue timeout."""
        loop = asyncio.get_running_loop()
        if run.queue_deadline is None:
            run.queue_deadline = loop.time() + self._timeout_of(job)
        remaining = run.queue_deadline - loop.time()
        if remaining <= 0:
            return False
        self._waiting.setdefault(job.job_id, None)  # its place is kept until it leaves the queue (_drive)
        if job.state is not JobState.QUEUED:
            place = list(self._waiting).index(job.job_id) + 1
            self._move(job, JobState.QUEUED, f"waiting for capacity, place {place} of {len(self._waiting)}: {why}")
        else:  # queued already: no move, but the placement it was judged by is the new one
            self._persist(job)
        await self.capacity.wait(min(remaining, QUEUE_RECHECK))
        run.busy.clear()  # ask them again: what they said is out of date now
        return True

    async def _dispatch(self, job: JobRecord, peers: list[str], limits: Limits) -> list[tuple[Attempt, float]]:
        """Each node's attempt, with the seconds it took by this node's clock (for its reputation)."""
        self._executing.setdefault(job.job_id, set()).update(peers)

        async def timed(peer: str) -> tuple[Attempt, float]:
            started = time.monotonic()
            attempt = await self.dispatcher.attempt(job.job_id, peer, job.spec, limits)
            return attempt, time.monotonic() - started

        try:
            return list(await asyncio.gather(*(timed(peer) for peer in peers)))
        finally:
            self._executing.get(job.job_id, set()).difference_update(peers)
            now = time.time()
            self._settled.update(dict.fromkeys(peers, now))
            self.wake()  # those nodes have room again, as far as this node's own jobs go

    def _events(
        self, job: JobRecord, checked: Verified | Attempt, elapsed: float, limits: Limits
    ) -> list[tuple[str, Event, str]]:
        """What one attempt says of the node, from its outcome's kind and this node's clock only."""
        if isinstance(checked, Verified):
            late = elapsed > limits.wall_seconds  # the agent could not run longer: the rest was the node
            events = [Event.COMPLETED, *([Event.LATE] if late else [])]
        elif checked.outcome.kind is OutcomeKind.DECLINED:
            events = [Event.DECLINED]
        elif checked.outcome.kind is OutcomeKind.NODE_ERROR:
            events = [Event.TIMED_OUT if elapsed >= self.policy.run_timeout(limits) else Event.DIED]
        else:  # the agent's own failure or a cancel: nothing about the node
            events = []
        return [(checked.peer, event, job.job_id) for event in events]

    async def _observe(self, run: _Run, events: list[tuple[str, Event, str]]) -> None:
        """Record outcomes this node saw of other nodes (it does not rate itself), in the store and the run."""
        now = self.clock()
        seen = [Observation(peer, event, now, job_id) for peer, event, job_id in events if peer != self.network.peer_id]
        if seen:  # on disk with the job's next state: the group commit carries both
            self.jobs.stage_outcomes(seen)
            self._write_soon()
            run.learn(seen)

    async def _spot_check(self, job: JobRecord, run: _Run) -> dict[str, Any]:
        """Re-run the job on the first trusted node that can (one that already ran it counts),
        and compare. The trusted node decides: a primary result that differs is evidence."""
        base: dict[str, Any] = {"probability": job.checks.spot_check, "drawn": True}
        ran = [peer for peer in job.checks.trusted if peer in run.results]
        if ran:
            return {**base, "by": ran[0], "outcome": "agreed", "detail": f"{ran[0]} is trusted and ran it"}
        candidates = {c.peer_id: c for c in run.plan.candidates}
        tried: list[str] = []
        for peer in job.checks.trusted:
            candidate = candidates.get(peer)
            refused = "not heard from" if candidate is None else refusal(candidate, run.plan.context)
            if refused is not None:
                tried.append(f"{peer}: {refused}")
                continue
            self._move(job, JobState.RUNNING, f"spot check: re-running on trusted node {peer}")
            ((attempt, elapsed),) = await self._dispatch(job, [peer], run.plan.limits)
            self._move(job, JobState.VERIFYING, f"spot check: comparing with {peer}")
            checked = await self._checked(job, attempt)
            await self._observe(run, self._events(job, checked, elapsed, run.plan.limits))
            if not isinstance(checked, Verified):
                tried.append(f"{peer}: {checked.outcome.label}")
                continue
            results = {**run.results, peer: checked}
            judgement = judge(results, frozenset({peer}))
            if judgement.referee is Referee.UNANIMOUS:
                run.results[peer] = checked
                return {**base, "by": peer, "outcome": "agreed", "detail": f"{peer} returned the same result"}
            evidence = await self._record(job, run, judgement, results)
            detail = f"spot check by trusted node {peer} disagrees: {judgement.detail} (evidence {evidence})"
            run.results[peer] = checked
            run.disagreed.update({blamed: str(results[blamed].result) for blamed in judgement.blamed})
            return {**base, "by": peer, "outcome": "disagreed", "detail": detail}
        return {**base, "by": None, "outcome": "not_run", "detail": "no trusted node could run it: " + "; ".join(tried)}

    async def _record(
        self, job: JobRecord, run: _Run, judgement: Judgement, results: dict[str, Verified] | None = None
    ) -> str:
        """Keep the mismatch as evidence (every result with its signed receipt) and, with it, a
        ``disagreed`` event in each blamed node's reputation: their placement pays from now on."""
        evidence = Evidence.of(job.job_id, job.spec.agent, run.results if results is None else results, judgement)
        evidence_id = await asyncio.to_thread(self.jobs.save_evidence, evidence)
        job.corroboration.setdefault("evidence", []).append(evidence_id)
        log.warning("job %s: %s (evidence %s)", job.job_id, judgement.detail, evidence_id)
        run.learn([Observation(peer, Event.DISAGREED, evidence.at, job.job_id) for peer in judgement.blamed])
        return evidence_id

    def _finish_failed(self, job: JobRecord, run: _Run, why: str, spot: dict[str, Any] | None = None) -> None:
        self._executing.pop(job.job_id, None)
        job.corroboration = _corroboration(job, run, [], spot or _spot_not_drawn(job), failed=True)
        evidence = job.corroboration.get("evidence")
        if evidence and "evidence" not in why:
            why += f" (evidence {', '.join(evidence)}: GET /v1/evidence)"
        self._move(job, JobState.FAILED, why)

    def _correct_placement(self, job: JobRecord, attempt: Attempt, candidates: list[Candidate], plan: Plan) -> None:
        """The chosen node's explanation, corrected by the input bytes its offer said it holds
        (the view's summaries may lag); saved by the move that follows."""
        if attempt.held_bytes is None:
            return
        candidate = next((c for c in candidates if c.peer_id == attempt.peer), None)
        for index, entry in enumerate(job.placement):
            if candidate is not None and entry.get("peer_id") == attempt.peer and entry.get("verdict") == "chosen":
                job.placement[index] = corrected(entry, candidate, plan.context, attempt.held_bytes)

    async def _checked(self, job: JobRecord, attempt: Attempt) -> Verified | Attempt:
        """Keep what the node said (logs, the input bytes it fetched), and for an ok attempt its
        verified receipt and result (the receipt stored off the loop: a synced block write)."""
        if attempt.logs:
            job.logs[attempt.peer] = attempt.logs.decode("utf-8", "replace")
        if attempt.input_bytes_fetched is not None:
            job.input_bytes_fetched[attempt.peer] = attempt.input_bytes_fetched
        if self.policy.verdict(attempt.outcome) is not Verdict.ACCEPT:
            return attempt
        checked = check_receipt(job.job_id, job.spec, attempt)
        if isinstance(checked, Verified):
            await asyncio.to_thread(self.exchange.store.put, checked.receipt_cid, checked.receipt)
            job.results[checked.peer] = str(checked.result)
            job.receipts[checked.peer] = str(checked.receipt_cid)
        return checked


@dataclass(frozen=True)
class _Batch:
    """One group commit: the jobs taken from the stage, each with its prepared record and number
    of transitions, and how many stagings (``JobService._staged_count``) it covers."""

    counted: int
    jobs: list[tuple[JobRecord, tuple[Prepared, int]]]
    outcomes: frozenset[str]  # peers whose reputation entries it writes

    @property
    def records(self) -> list[Prepared]:
        return [record for _, (record, _) in self.jobs]


class _Run:
    """One job's attempts so far: verified results, nodes excluded, and why each was."""

    def __init__(self, plan: Plan, book: Book, clock: Callable[[], float]) -> None:
        self.book = book
        self.clock = clock
        self.plan = plan
        self._refresh()
        self.results: dict[str, Verified] = {}
        self.excluded: set[str] = set()
        self.refusals: dict[str, str] = {}  # peer -> why it did not run the job (shown if all fail)
        self.disagreed: dict[str, str] = {}  # peer -> the result it returned that was judged wrong
        self.busy: dict[str, str] = {}  # peer -> its busy answer: skipped until capacity may have appeared
        self.queue_deadline: float | None = None  # loop time after which waiting for capacity fails the job

    def learn(self, seen: list[Observation]) -> None:
        """What this run observed counts from its next decision on (a liar is not asked again).
        Only the peers observed are assessed again: the rest of the record did not change."""
        self.book.add(seen)
        self._refresh({observation.peer for observation in seen})

    def replan(self, candidates: list[Candidate]) -> None:
        """New candidates (a failover's search), each with its standing."""
        self.plan = replace(self.plan, candidates=candidates)
        self._refresh()

    def _refresh(self, peers: set[str] | None = None) -> None:
        now = self.clock()
        candidates = [
            replace(c, standing=self.book.standing(c.peer_id, now)) if peers is None or c.peer_id in peers else c
            for c in self.plan.candidates
        ]
        self.plan = replace(self.plan, candidates=candidates)

    def drop(self, peer: str, why: str) -> None:
        self.disagreed[peer] = str(self.results.pop(peer).result)
        self.excluded.add(peer)
        self.refusals[peer] = why


def _spot_not_drawn(job: JobRecord) -> dict[str, Any]:
    if job.checks.spot_check == 0:
        return {}
    return {"probability": job.checks.spot_check, "drawn": False, "by": None, "outcome": "not_drawn",
            "detail": "not picked for a spot check this time"}  # fmt: skip


def _corroboration(
    job: JobRecord, run: _Run, primaries: list[str], spot: dict[str, Any], failed: bool = False
) -> dict[str, Any]:
    """How the result was corroborated, for the job's status and the SDK's Job.corroboration.

    ``agreed`` lists every node that returned the job's result (the primaries and a trusted
    spot-checker): the nodes a client pays. A node judged wrong is in ``disagreed``, never paid.
    """
    operators = {c.peer_id: c.operator_id for c in run.plan.candidates}
    ran = sorted(set(run.results) | set(run.disagreed))
    agreed = [*primaries, *([spot["by"]] if spot.get("outcome") == "agreed" and spot["by"] not in primaries else [])]
    if failed:
        summary = "not corroborated: results disagree" if job.corroboration.get("evidence") else "no result"
    else:
        total = len(primaries) + len([peer for peer in run.disagreed if peer not in agreed])
        if job.spec.redundancy == 1 and total == 1:
            summary = "single executor"
        else:
            summary = f"{len(primaries)} distinct operators agreed of {total} run"
        if spot.get("outcome") == "agreed":
            summary += f", spot-checked by {spot['by']}"
        elif job.spec.redundancy == 1:
            summary += ", unverified"
        if spot.get("outcome") == "not_run":
            summary += " (the spot check could not run)"
    return {
        "summary": summary,
        "required": job.spec.redundancy,
        "agreed": [] if failed else agreed,
        "ran": ran,
        "disagreed": dict(run.disagreed),
        "operators": {peer: operators.get(peer, peer) for peer in ran},
        "spot_check": spot,
        "evidence": list(job.corroboration.get("evidence", [])),
    }
