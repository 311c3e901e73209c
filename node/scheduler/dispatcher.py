"""The requesting side: decide where a job runs, dispatch it with failover, verify the results.

The three steps are separate (:mod:`node.scheduler.decide`, :mod:`node.scheduler.dispatch`
with its :class:`~node.scheduler.dispatch.DispatchPolicy`, :mod:`node.scheduler.verify`);
this module only drives a job through them and records every state change, through
:meth:`JobService._move` alone, before anything else happens, so a restarted requester
resumes unfinished jobs (executors answer a repeated job id with the first run's result
instead of running it twice).

Cancelling (``DELETE /v1/jobs/{id}``) ends the job ``cancelled`` at once and sends the
protocol's cancel to every node running it; they stop the sandbox. A cancelled run
claims nothing; a run that had already finished with a receipt is claimed as usual
(see :mod:`node.scheduler.execution`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from contracts.errors import AuthorizationError
from contracts.payment import commitment_of
from node.announce import PeerTable
from node.exchange import BlockExchange
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from node.scheduler.candidates import Candidate
from node.scheduler.decide import Decider
from node.scheduler.dispatch import Attempt, Dispatcher, DispatchPolicy, Verdict
from node.scheduler.events import JobEvents
from node.scheduler.execution import JobExecution
from node.scheduler.job import JobRecord, JobSpec, JobState
from node.scheduler.jobstore import JobStore, new_job_id
from node.scheduler.placement import decide
from node.scheduler.verify import Verified, check_receipt, compare

log = logging.getLogger("mycelnet.jobs")

RESUME_WAIT = 20.0  # after a restart: time for the nodes chosen before it to be heard from again


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
    ) -> None:
        self.jobs = jobs
        self.metrics = metrics
        self.network = network
        self.exchange = exchange
        self.peers = peers
        self.local = local
        self.policy = policy or DispatchPolicy()
        self.decider = Decider(network, exchange, peers, own, bound)
        self.dispatcher = Dispatcher(network, local, self.policy)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._executing: dict[str, set[str]] = {}  # job id -> nodes running it now (cancel goes to them)
        self.events = JobEvents()

    # -- API ---------------------------------------------------------------------------
    def submit(self, spec: JobSpec, job_id: str | None = None) -> JobRecord:
        job = JobRecord(job_id or new_job_id(), spec)
        self._move(job, JobState.QUEUED, "submitted")
        self._start(job)
        return job

    def resume_unfinished(self) -> int:
        unfinished = self.jobs.unfinished()
        for job in unfinished:
            self._start(job, resumed=True)
        return len(unfinished)

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
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- the job's life -------------------------------------------------------------------
    def _start(self, job: JobRecord, resumed: bool = False) -> None:
        task = asyncio.create_task(self._drive(job, resumed))
        self._tasks[job.job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.job_id, None))

    def _move(self, job: JobRecord, state: JobState, reason: str) -> None:
        job.move(state, reason)
        self.jobs.save(job)
        self.events.publish(job)
        if state.final and self.metrics is not None:  # submission to final state, by outcome
            self.metrics.job_finished(state.value, job.transitions[-1].at - job.transitions[0].at)

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
        plan = await self.decider.plan(spec, payment)
        excluded: set[str] = set()
        refusals: dict[str, str] = {}  # peer -> why it did not run the job (shown if all fail)
        results: dict[str, Verified] = {}
        while len(results) < spec.redundancy:
            decision = decide(plan.candidates, plan.context.excluding(excluded), spec.redundancy)
            job.placement = decision.reasons
            self.jobs.save(job)
            pending = [peer for peer in decision.ranked if peer not in results][: spec.redundancy - len(results)]
            if len(excluded) + len(pending) > self.policy.max_attempts:
                pending = []
                refusals["policy"] = f"gave up after {self.policy.max_attempts} nodes"
            if not pending:
                why = decision.explanation + "".join(f"; {peer}: {reason}" for peer, reason in sorted(refusals.items()))
                if results:
                    why = f"only {len(results)} of {spec.redundancy} nodes could run it: {why}"
                self._move(job, JobState.FAILED, why)
                return
            self._move(job, JobState.RUNNING, f"dispatched to {', '.join(pending)}")
            self._executing.setdefault(job.job_id, set()).update(pending)
            attempts = await asyncio.gather(
                *(self.dispatcher.attempt(job.job_id, peer, spec, plan.limits) for peer in pending)
            )
            self._executing.get(job.job_id, set()).difference_update(pending)
            for attempt in attempts:
                checked = self._checked(job, attempt)
                if isinstance(checked, Verified):
                    results[checked.peer] = checked
                    continue
                verdict = self.policy.verdict(checked.outcome)
                if verdict is Verdict.FAIL_JOB:  # the agent itself failed: another node would fail the same way
                    self._move(job, JobState.FAILED, f"{checked.peer}: {checked.outcome.label}")
                    return
                excluded.add(checked.peer)
                refusals[checked.peer] = checked.outcome.label
                log.info("job %s: %s %s; failing over", job.job_id, checked.peer, checked.outcome.label)
                why = f"{checked.peer} {checked.outcome.label}; failing over to the next node"
                self._move(job, JobState.PLACING, why)
        self._executing.pop(job.job_id, None)
        self._move(job, JobState.VERIFYING, f"{len(results)} result(s) to compare")
        agreement = compare(results)
        if agreement.result is None:
            self._move(job, JobState.FAILED, agreement.detail)
            return
        self._move(job, JobState.DONE, agreement.detail)

    def _checked(self, job: JobRecord, attempt: Attempt) -> Verified | Attempt:
        """Keep what the node said (logs), and for an ok attempt its verified receipt and result."""
        if attempt.logs:
            job.logs[attempt.peer] = attempt.logs.decode("utf-8", "replace")
        if self.policy.verdict(attempt.outcome) is not Verdict.ACCEPT:
            return attempt
        checked = check_receipt(job.job_id, job.spec, attempt)
        if isinstance(checked, Verified):
            self.exchange.store.put(checked.receipt_cid, checked.receipt)
            job.results[checked.peer] = str(checked.result)
            job.receipts[checked.peer] = str(checked.receipt_cid)
        return checked
