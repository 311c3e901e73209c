"""The executing side of ``/mycel/job/1.0.0``: answer offers, run accepted jobs, return receipts.

Messages are dag-cbor maps. ``{"op": "offer", "job_id", "spec"}`` is answered
``{"accept": bool, "reason": str}`` (a node declines when it lacks the runtime, is
outside the job's regions, or is full). ``{"op": "run", "job_id", "spec",
"providers": [peer IDs]}`` fetches the agent and any missing inputs (every block
verified), runs the agent in its sandbox, stores and provides the result, and answers
``{"status", "result", "receipt", "logs"}``. Job ids are idempotent: a repeated
``run`` gets the first run's answer (or waits for it), never a second run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agents.bundle import open_bundle
from agents.executor import Executor
from agents.manifest import Limits
from agents.runtime.base import RunRequest
from contracts.errors import ChainError
from node.exchange import BlockExchange
from node.metrics import Metrics
from node.scheduler.job import JobError, JobSpec
from node.scheduler.jobstore import JobStore
from node.settlement.service import NodeSettlement
from storage import dagcbor
from storage.cid import CID
from storage.errors import CodecError, StorageError

log = logging.getLogger("mycelnet.jobs")

PROTOCOL = "/mycel/job/1.0.0"
LOG_RETURNED = 64 << 10
PERSISTED_LOG = 4 << 10  # the tail kept with a remembered answer (the requester already has the rest)


class JobExecution:
    def __init__(
        self,
        exchange: BlockExchange,
        executor: Executor,
        metrics: Metrics,
        region: str,
        slots: int,
        provide: Callable[[CID], None],
        settlement: NodeSettlement | None = None,
        answers: JobStore | None = None,
    ) -> None:
        self.exchange = exchange
        self.store = exchange.store
        self.executor = executor
        self.metrics = metrics
        self.region = region
        self.slots = slots
        self.running = 0
        self._provide = provide
        self.settlement = settlement
        self.answers = answers  # persisted answers: a restarted executor still never runs a job twice
        self._answers: dict[str, dict[str, Any]] = {}
        self._in_flight: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def handle(self, peer: str, request: bytes) -> list[bytes]:
        try:
            message = dagcbor.decode(request)
            if not isinstance(message, dict) or not isinstance(message.get("job_id"), str):
                raise JobError("a job message is a map with a job_id")
            spec = JobSpec.from_record(message.get("spec"))
        except (CodecError, JobError) as exc:
            return [dagcbor.encode({"accept": False, "status": "failed: bad request", "reason": str(exc)})]
        if message.get("op") == "offer":
            return [dagcbor.encode(self.offer(message["job_id"], spec))]
        if message.get("op") == "run":
            providers = [p for p in message.get("providers", []) if isinstance(p, str)] + [peer]
            return [dagcbor.encode(await self.run(message["job_id"], spec, providers))]
        return [dagcbor.encode({"accept": False, "reason": "unknown op"})]

    def _remembered(self, job_id: str) -> dict[str, Any] | None:
        if job_id not in self._answers and self.answers is not None:
            stored = self.answers.answer(job_id)
            if stored is not None:
                self._answers[job_id] = stored
        return self._answers.get(job_id)

    def offer(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        if self._remembered(job_id) is not None or job_id in self._in_flight:
            return {"accept": True, "reason": "already running or done here"}
        if spec.regions and self.region not in spec.regions:
            return {"accept": False, "reason": f"this node is in {self.region}, outside {list(spec.regions)}"}
        if self.running >= self.slots:
            return {"accept": False, "reason": f"full: {self.running} jobs on {self.slots} slots"}
        if self.settlement is not None:
            if spec.payment is not None:
                try:
                    self.settlement.payment_for_me(job_id, spec.payment)
                except ChainError as exc:
                    return {"accept": False, "reason": f"payment refused: {exc}"}
            elif self.settlement.price > 0:
                return {"accept": False, "reason": f"this node charges {self.settlement.price} wei per CPU-second: "
                        "attach a payment authorisation"}  # fmt: skip
        return {"accept": True, "reason": "capacity available"}

    async def run(self, job_id: str, spec: JobSpec, providers: list[str]) -> dict[str, Any]:
        remembered = self._remembered(job_id)
        if remembered is not None:
            return remembered
        if job_id in self._in_flight:
            return await asyncio.shield(self._in_flight[job_id])
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._in_flight[job_id] = future
        self.running += 1
        try:
            answer = await self._execute(job_id, spec, providers)
            if answer.get("receipt") is not None:  # the agent ran: never run it again for this id
                self._answers[job_id] = answer
                if self.answers is not None:
                    self.answers.save_answer(job_id, {**answer, "logs": answer["logs"][-PERSISTED_LOG:]})
            future.set_result(answer)
            return answer
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters see it, nobody logs it as lost
            raise
        finally:
            self.running -= 1
            del self._in_flight[job_id]

    async def _execute(self, job_id: str, spec: JobSpec, providers: list[str]) -> dict[str, Any]:
        try:
            for root in (spec.agent, *spec.inputs.values()):
                if await asyncio.to_thread(self.store.missing_blocks, root):  # includes the root when absent
                    holders = list(await self.exchange.holders(root)) or providers
                    await self.exchange.fetch_and_pin(root, holders, f"job {job_id}")  # GC held off until pinned
            bundle = open_bundle(self.store, spec.agent)
            limits = bundle.manifest.limits
            if spec.limits:
                limits = Limits(**{**limits.__dict__, **{k: v for k, v in spec.limits.items() if hasattr(limits, k)}})
            request = RunRequest(job_id, bundle, dict(spec.inputs), spec.args, limits=limits)
            outcome = await asyncio.to_thread(self.executor.run, request)
        except (StorageError, JobError, Exception) as exc:  # every failure is explained to the requester
            log.warning("job %s failed before it ran: %s", job_id, exc)
            return {"status": f"failed: {type(exc).__name__}: {exc}", "result": None, "receipt": None, "logs": b""}
        if outcome.result is not None:
            self._provide(outcome.result)
            self._claim(job_id, spec, outcome.receipt, outcome.result, outcome.raw.cpu_seconds)
        self.metrics.inc("jobs_executed_total", status=outcome.status.split(":")[0])
        return {
            "status": outcome.status,
            "result": outcome.result,
            "receipt": outcome.receipt,
            "logs": outcome.logs[-LOG_RETURNED:],
        }

    def _claim(self, job_id: str, spec: JobSpec, receipt: bytes | None, result: CID, cpu_seconds: float) -> None:
        """Queue the payment claim before answering, so a crash after the answer loses nothing."""
        if self.settlement is None or spec.payment is None or receipt is None:
            return
        try:
            self.settlement.claim(job_id, spec.payment, receipt, result, cpu_seconds)
        except ChainError as exc:  # the job still succeeded; the operator learns why it is unpaid
            log.warning("job %s ran but cannot be claimed: %s", job_id, exc)
            self.metrics.inc("claims_failed_total")
