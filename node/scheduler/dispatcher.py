"""The requesting side: place a job near its data, dispatch it, fail over, compare redundant results.

Every state change is saved to the job store before anything else happens, so a
restarted requester resumes unfinished jobs (executors answer a repeated job id with
the first run's result instead of running it twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agents import receipt as receipts
from agents.bundle import open_bundle
from agents.errors import ReceiptError
from contracts.errors import AuthorizationError
from contracts.payment import Payment
from node.announce import PeerTable
from node.errors import NetworkError
from node.exchange import BlockExchange
from node.p2p.network import P2PNetwork
from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.execution import PROTOCOL, JobExecution
from node.scheduler.job import JobRecord, JobSpec, JobState
from node.scheduler.jobstore import JobStore, new_job_id
from node.scheduler.placement import decide
from storage import dagcbor
from storage.cid import CID
from storage.errors import StorageError

log = logging.getLogger("mycelnet.jobs")

OFFER_TIMEOUT = 10.0
RUN_GRACE = 60.0
RESUME_WAIT = 20.0  # on top of the agent's wall-clock limit: fetching inputs, staging, the receipt


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
    ) -> None:
        self.jobs = jobs
        self.network = network
        self.exchange = exchange
        self.peers = peers
        self.local = local
        self.own = own
        self.bound = bound  # (address, peer ID) -> is the address registered to that peer on the ledger?
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.events: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}

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

    def cancel(self, job_id: str) -> JobRecord | None:
        job = self.jobs.get(job_id)
        if job is None or job.state.final:
            return job
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()
        self._move(job, JobState.CANCELLED, "cancelled by the client")
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
        for queue in self.events.get(job.job_id, []):
            queue.put_nowait({"state": state.value, "reason": reason})

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
        bundle = open_bundle(self.exchange.store, spec.agent) if self.exchange.store.has(spec.agent) else None
        if bundle is None:
            await self.exchange.fetch(spec.agent)
            bundle = open_bundle(self.exchange.store, spec.agent)
        manifest = bundle.manifest
        regions = tuple(spec.regions) or tuple(manifest.needs.regions)
        try:
            payment = Payment.decode(spec.payment, job.job_id) if spec.payment is not None else None
        except AuthorizationError as exc:
            self._move(job, JobState.FAILED, f"the job's payment is unusable: {exc}")
            return
        candidates, input_bytes = await self._candidates(spec)
        if payment is not None and self.bound is not None:
            candidates = await self._only_bound_addresses(candidates)
        addresses = {c.peer_id: c.chain_address for c in candidates}
        context = PlacementContext(
            manifest.runtime,
            spec.needs_gpu or manifest.needs.gpu,
            regions,
            input_bytes,
            spec.max_price,
            payable=frozenset(payment.authorizations) if payment else None,
        )
        excluded: set[str] = set()
        declined: dict[str, str] = {}  # peer -> why it did not run the job (shown if all fail)
        results: dict[str, tuple[CID | None, str]] = {}
        while len(results) < spec.redundancy:
            decision = decide(
                candidates, PlacementContext(**{**context.__dict__, "excluded": frozenset(excluded)}), spec.redundancy
            )
            job.placement = decision.reasons
            self.jobs.save(job)
            pending = [peer for peer in decision.ranked if peer not in results][: spec.redundancy - len(results)]
            if not pending:
                why = decision.explanation + "".join(f"; {peer}: {reason}" for peer, reason in sorted(declined.items()))
                self._move(
                    job,
                    JobState.FAILED,
                    why if not results else f"only {len(results)} of {spec.redundancy} nodes could run it: {why}",
                )
                return
            self._move(job, JobState.RUNNING, f"dispatched to {', '.join(pending)}")
            outcomes = await asyncio.gather(
                *(
                    self._dispatch(job, peer, manifest.limits.wall_seconds, _spec_for(spec, payment, addresses[peer]))
                    for peer in pending
                )
            )
            for peer, outcome in zip(pending, outcomes, strict=True):
                if outcome is None or outcome[1] != "ok":
                    excluded.add(peer)
                    why = outcome[1] if outcome else "did not answer"
                    declined[peer] = why
                    if outcome is not None and outcome[1].startswith(("killed:", "failed: exit", "failed: trap")):
                        # the agent itself failed: another node would fail the same way
                        self._move(job, JobState.FAILED, f"{peer}: {why}")
                        return
                    log.info("job %s: %s %s; failing over", job.job_id, peer, why)
                    self._move(job, JobState.PLACING, f"{peer} {why}; failing over to the next node")
                else:
                    results[peer] = outcome
        self._move(job, JobState.VERIFYING, f"{len(results)} result(s) to compare")
        distinct = {str(cid) for cid, _ in results.values()}
        if len(distinct) != 1:
            detail = ", ".join(f"{peer} -> {cid}" for peer, (cid, _) in sorted(results.items()))
            self._move(job, JobState.FAILED, f"results disagree: {detail}")
            return
        self._move(job, JobState.DONE, f"result {distinct.pop()} from {', '.join(sorted(results))}")

    async def _dispatch(
        self, job: JobRecord, peer: str, wall_seconds: int, spec: JobSpec
    ) -> tuple[CID | None, str] | None:
        message = {"job_id": job.job_id, "spec": spec.to_record()}
        try:
            if peer == self.network.peer_id:
                offer = self.local.offer(job.job_id, spec)
                if not offer["accept"]:
                    return None, f"declined: {offer['reason']}"
                answer = await self.local.run(job.job_id, spec, [])
            else:
                frames = await self.network.request(
                    peer, PROTOCOL, dagcbor.encode({**message, "op": "offer"}), timeout=OFFER_TIMEOUT
                )
                offer = dagcbor.decode(frames[0]) if frames else {}
                if not isinstance(offer, dict) or not offer.get("accept"):
                    return (
                        None,
                        f"declined: {offer.get('reason', 'no answer') if isinstance(offer, dict) else 'bad answer'}",
                    )
                run = {**message, "op": "run", "providers": [self.network.peer_id]}
                frames = await self.network.request(
                    peer, PROTOCOL, dagcbor.encode(run), timeout=wall_seconds + RUN_GRACE
                )
                answer = dagcbor.decode(frames[0]) if frames else {}
        except (NetworkError, StorageError, IndexError) as exc:
            return None, f"unreachable or died mid-run ({exc})"
        return self._check_answer(job, peer, answer)

    def _check_answer(self, job: JobRecord, peer: str, answer: Any) -> tuple[CID | None, str]:
        if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
            return None, "answered with a malformed result"
        status = answer["status"]
        if isinstance(answer.get("logs"), bytes):
            job.logs[peer] = answer["logs"].decode("utf-8", "replace")
        if status != "ok":
            return None, status
        result, signed = answer.get("result"), answer.get("receipt")
        if not isinstance(signed, bytes):
            return None, "answered without a receipt"
        try:
            checked = receipts.verify(signed)
        except ReceiptError as exc:
            return None, f"sent a receipt that does not verify: {exc}"
        if checked.node != peer or checked.result != result or checked.job_id != job.job_id:
            return None, "sent a receipt that does not match its answer"
        receipt_cid = CID.for_block(signed, 0x71)
        self.exchange.store.put(receipt_cid, signed)
        job.results[peer] = str(result)
        job.receipts[peer] = str(receipt_cid)
        return result, "ok"

    async def _only_bound_addresses(self, candidates: list[Candidate]) -> list[Candidate]:
        """A paid job trusts an announced chain address only if the ledger binds it to that peer
        (an Ed25519 signature by the peer's key, checked here); otherwise the node counts as
        settling on no chain and the payment rule refuses it."""
        assert self.bound is not None
        bound = self.bound
        checks = await asyncio.gather(
            *(asyncio.to_thread(bound, c.chain_address, c.peer_id) for c in candidates if c.chain_address)
        )
        verdicts = iter(checks)
        kept = []
        for candidate in candidates:
            if candidate.chain_address and not next(verdicts):
                log.warning("%s announces %s, which the ledger does not bind to it", candidate.peer_id,
                            candidate.chain_address)  # fmt: skip
                candidate = Candidate(**{**candidate.__dict__, "chain_address": ""})
            kept.append(candidate)
        return kept

    async def _rtt(self, peer: str) -> float | None:
        """Round trip to a candidate over libp2p (None when it does not answer in time)."""
        try:
            return await asyncio.wait_for(self.network.ping(peer), 2.0)
        except (NetworkError, TimeoutError):
            return None

    async def _candidates(self, spec: JobSpec) -> tuple[list[Candidate], int]:
        """Candidates from signed announcements (and this node), with the input bytes each holds."""
        own = self.own()
        candidates = {own.peer_id: own}
        for record in self.peers.alive():
            a = record.announcement
            capacity, load = a.get("capacity", {}), a.get("load", {})
            candidates[record.peer_id] = Candidate(
                peer_id=record.peer_id,
                region=a.get("region", ""),
                runtimes=tuple(a.get("runtimes", ())),
                cpu_cores=int(capacity.get("cpu_cores", 1)),
                running_jobs=int(load.get("running_jobs", 0)),
                gpus=int(capacity.get("gpus", 0)),
                price=int(a.get("price", 0)),
                chain_address=str(a.get("chain_address", "")),
            )
        others = [peer for peer in candidates if peer != own.peer_id]
        rtts = await asyncio.gather(*(self._rtt(peer) for peer in others))
        for peer, rtt in zip(others, rtts, strict=True):
            if rtt is not None:
                candidates[peer] = Candidate(**{**candidates[peer].__dict__, "rtt": rtt})
            if peer in self.exchange.bandwidth:  # measured on earlier fetches from that peer
                candidates[peer] = Candidate(
                    **{**candidates[peer].__dict__, "bandwidth": self.exchange.bandwidth[peer]}
                )
        held: dict[str, int] = dict.fromkeys(candidates, 0)
        total = 0
        for cid in spec.inputs.values():
            holders = await self.exchange.holders(cid)
            own_size = await self.exchange.have_size(cid)  # no walk on the loop
            if own_size is not None:
                holders[own.peer_id] = own_size
            size = max(holders.values(), default=0)
            total += size
            for peer, held_size in holders.items():
                if peer in held:
                    held[peer] += held_size
        placed = [Candidate(**{**c.__dict__, "held_bytes": held[c.peer_id]}) for c in candidates.values()]
        return placed, total


def _spec_for(spec: JobSpec, payment: Payment | None, address: str) -> JobSpec:
    """The spec as one node receives it: with its own payment authorisation only."""
    if payment is None:
        return spec
    mine = payment.for_node(address) if address else None
    return JobSpec(**{**spec.__dict__, "payment": mine.encode() if mine else None})
