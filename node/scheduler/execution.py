"""The executing side of the job protocol: answer offers, run accepted jobs, stop cancelled ones.

Messages are the typed ones of :mod:`node.scheduler.protocol`. The trust rules:

- An offer is checked by the placement rules (:func:`node.scheduler.placement.refusal`)
  against this node's own candidate, the same rules the requester ran, plus the payment's
  signature. An accepted offer is remembered, briefly, for that job id, that spec's CID and
  that peer (:class:`OfferTable`).
- A run is the same gate: without a recent accepted offer for exactly this job id, spec
  and peer it is declined and nothing is fetched or started.
- A run belongs to this node, not to the stream that asked for it: one task per job id,
  which stream handlers await shielded. A stream closing (the requester restarting, a
  timeout) does not stop the run; a re-sent run joins the same task; a job id that has
  run is answered from its remembered answer, never run twice.
- Capacity: one run per core holds a slot; up to ``queue_slots`` more accepted runs wait
  here, in order, for one. An accepted offer reserves its place until its run arrives (or
  for ``RESERVE_TTL``), so offers racing in at once cannot overfill the node. Past that the
  offer is declined as typed ``busy`` with how many wait ahead; the requester keeps the job
  queued. Every change of load calls ``on_change`` (the node re-announces, local waiting
  jobs retry), so capacity that frees up is known at once, not at the next heartbeat.
- A cancel from the peer whose offer was accepted sets the run's cancel event, and the
  runtime stops the sandbox; the run then answers with a ``cancelled`` outcome.

Private data: every offer and every run passes the running gate
(:class:`node.privacy.running.RunGate`) with the spec as sent and the peer that sent it;
what a private job may give back (result size, logs) is decided after the run by the
policies of its inputs, and its result is never put on the DHT.

Settlement: a node claims payment only for a run whose outcome is ok, with a result and
a signed receipt. A cancelled run claims nothing (the sandbox was stopped, no result was
delivered); a run that finished before the cancel reached it is a delivered run and is
claimed as usual.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from agents.bundle import Bundle, open_bundle
from agents.errors import ManifestError, RuntimeUnavailable
from agents.executor import Executor, JobOutcome
from agents.outcome import Outcome
from agents.runtime.base import RunRequest
from contracts.errors import ChainError
from node.errors import NetworkError
from node.exchange import BlockExchange
from node.metrics import Metrics
from node.privacy.running import WITHHELD_LOGS, PrivateJobRefused, PrivateRun, RunGate
from node.scheduler import protocol
from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.job import JobSpec
from node.scheduler.jobstore import JobStore
from node.scheduler.limits import Ceilings, effective_limits
from node.scheduler.placement import refusal
from node.scheduler.protocol import (
    Cancel,
    CancelAnswer,
    Decline,
    Offer,
    OfferAnswer,
    OfferRun,
    ProtocolError,
    Run,
    RunAnswer,
    spec_cid,
)
from node.scheduler.rules import runtime as runtime_rule
from node.settlement.service import NodeSettlement
from storage.cid import CID
from storage.errors import PinQuotaExceededError, StorageError
from storage.leases import LeasePolicy, PinLease

log = logging.getLogger("mycelnet.jobs")

PERSISTED_LOG = 4 << 10  # the tail kept with a remembered answer (the requester already has the rest)
OFFER_TTL = 120.0  # seconds an accepted offer stays good for its run
OFFER_TABLE_SIZE = 4096  # accepted offers remembered at once; the oldest go first
OFFERS_PER_PEER = 256  # one peer's flood of offers evicts its own oldest, not everyone else's
RESERVE_TTL = 15.0  # seconds an accepted offer holds its place here while its run is on the way
NEEDS_KEPT = 256  # agents whose manifest's needs are remembered (the oldest go first)


@dataclass(frozen=True)
class _Accepted:
    peer: str
    spec: CID
    expires: float


class OfferTable:
    """Offers this node accepted, by job id: bounded (oldest dropped first) and expiring.

    A peer cannot grow it without bound (nor push other peers' offers out: past its own
    share, a peer's oldest offers go first), and a run long after its offer needs a new one.
    """

    def __init__(
        self,
        ttl: float = OFFER_TTL,
        size: int = OFFER_TABLE_SIZE,
        clock: Callable[[], float] = time.monotonic,
        per_peer: int = OFFERS_PER_PEER,
    ) -> None:
        self.ttl, self.size, self.clock, self.per_peer = ttl, size, clock, per_peer
        self._offers: OrderedDict[str, _Accepted] = OrderedDict()
        # each peer's offers, oldest first: its share is enforced without a scan of the table
        self._by_peer: dict[str, OrderedDict[str, None]] = {}

    def accept(self, job_id: str, peer: str, spec: CID) -> None:
        self.forget(job_id)
        self._offers[job_id] = _Accepted(peer, spec, self.clock() + self.ttl)
        own = self._by_peer.setdefault(peer, OrderedDict())
        own[job_id] = None
        while len(own) > self.per_peer:
            self.forget(next(iter(own)))
        while len(self._offers) > self.size:
            self.forget(next(iter(self._offers)))

    def holds(self, job_id: str, peer: str, spec: CID) -> bool:
        accepted = self._offers.get(job_id)
        if accepted is None or accepted.expires < self.clock():
            self.forget(job_id)
            return False
        return accepted.peer == peer and accepted.spec == spec

    def peer_of(self, job_id: str) -> str | None:
        accepted = self._offers.get(job_id)
        return accepted.peer if accepted is not None else None

    def forget(self, job_id: str) -> None:
        accepted = self._offers.pop(job_id, None)
        if accepted is None:
            return
        own = self._by_peer[accepted.peer]
        del own[job_id]
        if not own:
            del self._by_peer[accepted.peer]

    def __len__(self) -> int:
        return len(self._offers)


@dataclass(frozen=True)
class _Needs:
    """The part of an agent's manifest an offer's placement check reads."""

    runtime: str
    gpu: bool
    regions: tuple[str, ...]


@dataclass
class _Running:
    """One run of one job on this node, whoever is waiting for it."""

    peer: str
    spec: CID
    task: asyncio.Task[RunAnswer]
    cancel: threading.Event


MAX_HOLDINGS_KEPT = 1024  # peers whose pinned bytes are remembered between offers


@dataclass(frozen=True)
class _Holding:
    """A peer's pinned bytes as read at the store's ``pin_writes``, and when the first counted pin expires."""

    pin_writes: int
    held: int
    first_expiry: int | None


class JobExecution:
    def __init__(
        self,
        exchange: BlockExchange,
        executor: Executor,
        metrics: Metrics,
        own: Callable[[], Candidate],
        provide: Callable[[CID], None],
        settlement: NodeSettlement | None = None,
        answers: JobStore | None = None,
        ceilings: Ceilings | None = None,
        offers: OfferTable | None = None,
        leases: LeasePolicy | None = None,
        privacy: RunGate | None = None,
        queue_slots: int = 0,
    ) -> None:
        self.exchange = exchange
        self.store = exchange.store
        self.executor = executor
        self.metrics = metrics
        self.own = own  # this node as placement sees it: offers are checked against it
        self.running = 0  # runs accepted and not yet answered (fetching inputs and waiting for a slot included)
        self.waiting = 0  # of those, runs waiting in this node's queue for a free core
        self.in_sandbox = 0  # of those, runs whose agent is in its sandbox now
        self.queue_slots = queue_slots  # accepted runs that may wait for a core, beyond one per core
        self.on_change: Callable[[], None] | None = None  # told whenever the load changes
        self._reserved: dict[str, float] = {}  # job id -> until when its accepted offer holds a place
        self._slots: asyncio.Semaphore | None = None  # one per core, made on the loop at first use
        self._provide = provide
        self.settlement = settlement
        self.answers = answers  # persisted answers: a restarted executor still never runs a job twice
        self.ceilings = ceilings or Ceilings()
        self.offers = offers or OfferTable()
        self.leases = leases or LeasePolicy()  # pins made for remote requesters expire (storage.leases)
        self.privacy = privacy  # None: this node holds no private data (tests, tools)
        self._answers: dict[str, tuple[CID, RunAnswer]] = {}  # job id -> (spec CID, answer)
        self._runs: dict[str, _Running] = {}
        self._needs: dict[CID, _Needs] = {}  # agent -> what its manifest asks of a node (_needs_of)
        self._holdings: dict[str, _Holding] = {}  # peer -> its pinned bytes as last read (_quota_refusal)

    # -- the stream handler ------------------------------------------------------------
    async def handle(self, peer: str, request: bytes) -> list[bytes]:
        try:
            message = protocol.decode_request(request)
        except ProtocolError as exc:
            return [protocol.encode(_refusal_for(request, f"bad request: {exc}"))]
        answer: protocol.Answer
        if isinstance(message, OfferRun):
            offered = await self._stating_held(
                message.spec, await self._quota_refusal(peer) or self.offer(peer, message.offer)
            )
            if not offered.accepted or offered.ahead:  # declined, or queued here: the run comes apart
                return [protocol.encode(offered)]
            return [protocol.encode(offered), protocol.encode(await self.run(peer, message.run))]
        if isinstance(message, Offer):
            answer = await self._stating_held(
                message.spec, await self._quota_refusal(peer) or self.offer(peer, message)
            )
        elif isinstance(message, Run):
            answer = await self.run(peer, message)
        else:
            answer = self.cancel(peer, message)
        return [protocol.encode(answer)]

    # -- offer -------------------------------------------------------------------------
    async def _stating_held(self, spec: JobSpec, answer: OfferAnswer) -> OfferAnswer:
        """An accepted offer says how many of the job's input bytes this node holds whole now,
        so the requester can correct a prediction made from announcements that may lag (no
        extra round trip: the answer goes anyway). Pinned inputs answer from their pin record;
        others are walked off the loop. Not for a job over private data (it carries an access
        proof): a private input's size is for its policies to give."""
        if not answer.accepted or spec.access is not None:
            return answer
        held = 0
        for cid in set(spec.inputs.values()):
            size = await self.exchange.have_size(cid)
            held += size or 0
        return replace(answer, held=min(held, protocol.MAX_BYTES))

    async def _quota_refusal(self, peer: str) -> OfferAnswer | None:
        """Refuse a peer that has its quota of bytes pinned here already (the pin table is read off the loop).

        The count is a walk of the whole pin table, so it is read again only once it may have
        changed: after a pin write of this store (leases for peers are made only by this node's
        process) or once the first of the peer's counted pins has expired. It was read per offer,
        a thread hop and a decode of every pin for each one."""
        if self.leases.quota_bytes is None:
            return None
        known = self._known_holding(peer)
        if known is not None:
            held = known
        else:
            writes = self.store.pin_writes  # before the read: a write during it makes the count stale
            held, first_expiry = await asyncio.to_thread(self.store.holding, peer)
            if len(self._holdings) >= MAX_HOLDINGS_KEPT:
                self._holdings.clear()
            self._holdings[peer] = _Holding(writes, held, first_expiry)
        if not self.leases.exhausted(held):
            return None
        return OfferAnswer(False, str(PinQuotaExceededError(peer, held, 0, self.leases.quota_bytes or 0)))

    def _known_holding(self, peer: str) -> int | None:
        """The peer's pinned bytes as last read, while they cannot have changed; else None."""
        kept = self._holdings.get(peer)
        if kept is None or kept.pin_writes != self.store.pin_writes:
            return None
        if kept.first_expiry is not None and self.store.clock() >= kept.first_expiry:
            return None
        return kept.held

    @property
    def occupancy(self) -> int:
        """Jobs this node holds: runs (waiting ones included) and offers whose run is on the way."""
        now = time.monotonic()
        for job_id in [job for job, until in self._reserved.items() if until < now]:
            del self._reserved[job_id]
        return self.running + len(self._reserved)

    def offer(self, peer: str, message: Offer) -> OfferAnswer:
        job_id, spec = message.job_id, message.spec
        cid = spec_cid(spec)
        known = self._known_spec(job_id)
        if known is not None:
            if known != cid:
                return OfferAnswer(False, "this job id already ran here with a different spec", Decline.REFUSED)
            self.offers.accept(job_id, peer, cid)
            return OfferAnswer(True, "already running or done here")
        own = self.own()
        refused = refusal(replace(own, running_jobs=0), self._context(job_id, spec))  # load: below
        if refused is None:
            refused = self._payment_refusal(job_id, spec)
        if refused is None:
            try:
                self._private(peer, spec)
            except PrivateJobRefused as exc:
                refused = f"refuses the job: {exc}"
        if refused is not None:
            return OfferAnswer(False, f"this node {refused}", Decline.REFUSED)
        held, cores = self.occupancy, max(1, own.cpu_cores)
        ahead = max(0, held - cores + 1)  # runs that must end before this one gets a core
        if job_id not in self._reserved and held >= cores + self.queue_slots:
            return OfferAnswer(False, f"busy, {ahead} ahead ({cores} cores, {self.queue_slots} queue places)",
                               Decline.BUSY, ahead)  # fmt: skip
        self.offers.accept(job_id, peer, cid)
        self._reserved[job_id] = time.monotonic() + RESERVE_TTL
        self._changed()
        return OfferAnswer(True, "capacity available" if ahead == 0 else f"queued here, {ahead} ahead", ahead=ahead)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _context(self, job_id: str, spec: JobSpec) -> PlacementContext:
        """The job as placement sees it from here: the manifest's needs only if the bundle is local."""
        runtime, needs_gpu, regions = None, spec.needs_gpu, tuple(spec.regions)
        needs = self._needs_of(spec.agent)
        if needs is not None:
            runtime, needs_gpu = needs.runtime, needs_gpu or needs.gpu
            regions = regions or needs.regions
        # a paid job can pay this node only at its own address, which it bound on the ledger itself
        address = self.own().chain_address
        payable = None if spec.payment is None else frozenset({address} if address else ())
        return PlacementContext(runtime, needs_gpu, regions, 0, spec.max_price, payable=payable)

    def _needs_of(self, agent: CID) -> _Needs | None:
        """What the agent's manifest asks of a node, if its bundle is here whole (None: not yet).

        A bundle is content-addressed, so what it says is read once per agent and kept: every
        offer used to walk the bundle's blocks and parse its manifest on the event loop."""
        known = self._needs.get(agent)
        if known is not None:
            return known
        if not self.store.has(agent) or self.store.missing_blocks(agent):
            return None
        try:
            manifest = open_bundle(self.store, agent).manifest
        except (ManifestError, StorageError, ValueError):
            return None  # the run will say what is wrong with the bundle
        needs = _Needs(manifest.runtime, manifest.needs.gpu, tuple(manifest.needs.regions))
        self._needs[agent] = needs
        while len(self._needs) > NEEDS_KEPT:
            del self._needs[next(iter(self._needs))]
        return needs

    def _payment_refusal(self, job_id: str, spec: JobSpec) -> str | None:
        """The rules saw a paid job this node can be paid for; here the commitment's signature and terms are checked."""
        if self.settlement is None or spec.payment is None:
            return None
        try:
            self.settlement.commitment_for_offer(job_id, spec.payment)
        except ChainError as exc:
            return f"refused the payment commitment: {exc}"
        return None

    def _private(self, peer: str, spec: JobSpec) -> PrivateRun | None:
        """The private-data terms of the job as ``peer`` sent it (None: no private input); raises PrivateJobRefused."""
        if self.privacy is None:
            return None
        return self.privacy.check(peer, spec.agent, spec.inputs, spec.args, spec.access)

    def _known_spec(self, job_id: str) -> CID | None:
        running = self._runs.get(job_id)
        if running is not None:
            return running.spec
        remembered = self._remembered(job_id)
        return remembered[0] if remembered is not None else None

    def _remembered(self, job_id: str) -> tuple[CID, RunAnswer] | None:
        if job_id not in self._answers and self.answers is not None:
            stored = self.answers.answer(job_id)
            if stored is not None:
                try:
                    self._answers[job_id] = (CID.parse(stored["spec"]), RunAnswer.from_record(stored["answer"]))
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("job %s: remembered answer unreadable (%s)", job_id, exc)
        return self._answers.get(job_id)

    # -- run ---------------------------------------------------------------------------
    async def run(self, peer: str, message: Run) -> RunAnswer:
        job_id, cid = message.job_id, spec_cid(message.spec)
        running = self._runs.get(job_id)
        joins = running is not None and running.peer == peer and running.spec == cid
        if not joins and not self.offers.holds(job_id, peer, cid):
            return RunAnswer(Outcome.declined("no offer accepted here for this job id and spec"))
        remembered = self._remembered(job_id)
        if remembered is not None:
            return remembered[1]
        if running is None:
            running = self._start(peer, message, cid)
        return await asyncio.shield(running.task)

    def _start(self, peer: str, message: Run, cid: CID) -> _Running:
        cancel = threading.Event()
        task = asyncio.create_task(self._run(peer, message, cid, cancel))
        running = _Running(peer, cid, task, cancel)
        self._runs[message.job_id] = running
        self._reserved.pop(message.job_id, None)
        self.running += 1

        def done(_: object) -> None:
            self.running -= 1
            if self._runs.get(message.job_id) is running:
                del self._runs[message.job_id]
            self._changed()  # a slot or a queue place is free

        task.add_done_callback(done)
        return running

    async def _take_slot(self, cancel: threading.Event) -> asyncio.Semaphore | None:
        """Wait in this node's queue for a free core (in arrival order); None if cancelled meanwhile."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, self.own().cpu_cores))
        slots = self._slots
        self.waiting += 1
        try:
            await slots.acquire()
        finally:
            self.waiting -= 1
        if cancel.is_set():
            slots.release()
            return None
        return slots

    async def _run(self, peer: str, message: Run, cid: CID, cancel: threading.Event) -> RunAnswer:
        try:
            slots = await self._take_slot(cancel)
            if slots is None:
                return RunAnswer(Outcome.cancelled())
            try:
                answer = await self._execute(peer, message.job_id, message.spec, [*message.providers], cancel)
            finally:
                slots.release()
        except asyncio.CancelledError:
            cancel.set()  # the node is stopping: stop the sandbox too
            raise
        if answer.receipt is not None:  # the agent ran: never run it again for this id
            self._answers[message.job_id] = (cid, answer)
            if self.answers is not None:  # a synced write: off the loop, before the answer goes back
                kept = replace(answer, logs=answer.logs[-PERSISTED_LOG:])
                record = {"spec": cid, "answer": kept.to_record()}
                await asyncio.to_thread(self.answers.save_answer, message.job_id, record)
        return answer

    async def _execute(
        self, peer: str, job_id: str, spec: JobSpec, providers: list[str], cancel: threading.Event
    ) -> RunAnswer:
        lease = self._lease_for(peer)
        inputs = set(spec.inputs.values())
        fetched = 0  # input bytes received from the network for this run: measured, not predicted
        try:
            try:  # the private terms checked again (the offer was a while ago), what is here renewed
                private, missing, bundle = await asyncio.to_thread(self._prepare, peer, job_id, spec, lease)
            except PrivateJobRefused as exc:
                return RunAnswer(Outcome.declined(str(exc)))
            for root in missing:
                holders = list(await self.exchange.holders(root)) or providers
                stats = await self.exchange.fetch_and_pin(root, holders, f"job {job_id}", lease)  # GC held off
                if root in inputs:  # the agent's bundle is not input (an input that is also the agent is)
                    fetched += stats.bytes_fetched
            if bundle is None:
                bundle = open_bundle(self.store, spec.agent)
            manifest = bundle.manifest
            context = PlacementContext(manifest.runtime, spec.needs_gpu or manifest.needs.gpu, tuple(spec.regions), 0)
            refused = runtime_rule.check(self.own(), context)
            if refused is not None:
                return RunAnswer(Outcome.declined(f"this node {refused}"))
            limits = effective_limits(manifest.limits, spec.limits, self.ceilings)
            # the result's pin is leased to the requester as it is stored (one synced commit, no second hop)
            request = RunRequest(job_id, bundle, dict(spec.inputs), spec.args, limits=limits, cancel=cancel,
                                 private=private.terms() if private is not None else None,
                                 result_lease=lease)  # fmt: skip
            if cancel.is_set():
                return RunAnswer(Outcome.cancelled())
            self.in_sandbox += 1
            try:
                outcome = await asyncio.to_thread(self.executor.run, request)
            finally:
                self.in_sandbox -= 1
        except PinQuotaExceededError as exc:  # the requester has enough stored here: another node may take it
            return RunAnswer(Outcome.declined(str(exc)[: protocol.MAX_REASON]))
        except ManifestError as exc:  # the client's agent is broken: any node would fail the same way
            return RunAnswer(Outcome.failed(f"invalid agent bundle: {exc}"))
        except (StorageError, NetworkError, RuntimeUnavailable, OSError, ValueError) as exc:
            log.warning("job %s failed before it ran: %s", job_id, exc)
            return RunAnswer(Outcome.node_error(f"{type(exc).__name__}: {exc}"))
        if private is not None:  # no byte counts: a private input's size is for its policies to give
            return await self._release(job_id, spec, private, outcome)
        if outcome.result is not None and outcome.outcome.is_ok:
            self._provide(outcome.result)
            self._claim(job_id, spec, outcome.receipt, outcome.result, outcome.raw.cpu_seconds)
        self.metrics.inc("jobs_executed_total", status=outcome.outcome.kind.value)
        result = outcome.result if outcome.outcome.is_ok else None
        return RunAnswer(outcome.outcome, result, outcome.receipt, outcome.logs[-protocol.MAX_LOGS :], fetched)

    def _prepare(
        self, peer: str, job_id: str, spec: JobSpec, lease: PinLease | None
    ) -> tuple[PrivateRun | None, list[CID], Bundle | None]:
        """In one thread hop (each was its own): the private terms of the job (raises
        PrivateJobRefused), the roots of the agent and inputs not all here (to fetch, in that
        order), a renewed lease on each root that is, and the bundle when it is here already."""
        private = self._private(peer, spec)
        missing = []
        for root in dict.fromkeys((spec.agent, *spec.inputs.values())):
            if self.store.missing_blocks(root):  # includes the root when absent
                missing.append(root)
            elif lease is not None:  # held already: renew, so no lease runs out under the run
                self._renew(root, f"job {job_id}", lease)
        return private, missing, None if missing else open_bundle(self.store, spec.agent)

    async def _release(self, job_id: str, spec: JobSpec, private: PrivateRun, outcome: JobOutcome) -> RunAnswer:
        """What of a private job leaves: its result within the policies' cap, logs where allowed; never the DHT."""
        assert self.privacy is not None
        logs = outcome.logs[-protocol.MAX_LOGS :] if private.logs else WITHHELD_LOGS
        self.metrics.inc("jobs_executed_total", status=outcome.outcome.kind.value)
        result = outcome.result
        if result is None:
            return RunAnswer(outcome.outcome, None, outcome.receipt, logs)
        if not outcome.outcome.is_ok:  # stored but withheld by the executor (over the cap): lock it here
            dataset = private.policies[0].policy.dataset
            blocks = await asyncio.to_thread(lambda: [cid for cid, _ in self.store.walk(result)])
            await asyncio.to_thread(self.privacy.registry.index, dataset, blocks)  # nobody may fetch it now
            self.metrics.inc("private_results_withheld_total")
            log.info("job %s: %s", job_id, outcome.outcome.detail)
            return RunAnswer(outcome.outcome, None, outcome.receipt, logs)
        self._claim(job_id, spec, outcome.receipt, result, outcome.raw.cpu_seconds)
        return RunAnswer(outcome.outcome, result, outcome.receipt, logs)

    def _claim(self, job_id: str, spec: JobSpec, receipt: bytes | None, result: CID, cpu_seconds: float) -> None:
        """Keep the paid job's evidence (commitment, receipt) before answering; the claim waits for
        the client's payment (node.settlement.pay), so a crash after the answer loses nothing."""
        if self.settlement is None or spec.payment is None or receipt is None:
            return
        try:
            self.settlement.delivered(job_id, spec.payment, receipt, result, cpu_seconds)
        except ChainError as exc:  # the job still succeeded; the operator learns why it is unpaid
            log.warning("job %s ran but cannot be paid: %s", job_id, exc)
            self.metrics.inc("claims_failed_total")

    def _renew(self, root: CID, name: str, lease: PinLease) -> None:
        """Renew the requester's lease on a root held here, unless it still has half its term
        to run (or the root is pinned for good): a pin write is a synced transaction, and a
        requester sending job after job over the same agent and inputs would pay one per input
        per job for a few seconds of extra term. Another requester's lease is taken over as before."""
        current = self.store.pin_of(root)
        if current is not None and (
            current.expires is None
            or (current.owner == lease.owner and current.expires - self.store.clock() >= self.leases.ttl_seconds / 2)
        ):
            return
        self.store.pin(root, name, lease=lease)

    def _lease_for(self, peer: str) -> PinLease | None:
        """None for this node's own jobs (their pins are permanent), else a lease for the requester."""
        return None if peer == self.own().peer_id else self.leases.lease_for(peer)

    # -- cancel ------------------------------------------------------------------------
    def cancel(self, peer: str, message: Cancel) -> CancelAnswer:
        """Stop a run (or forget an offer) of the peer that asked for it; nobody else may."""
        job_id = message.job_id
        running = self._runs.get(job_id)
        if running is not None:
            if running.peer != peer:
                return CancelAnswer(False, "this job runs here for another peer")
            running.cancel.set()
            self.offers.forget(job_id)
            return CancelAnswer(True, "stopping the run")
        if self.offers.peer_of(job_id) == peer:
            self.offers.forget(job_id)
            if self._reserved.pop(job_id, None) is not None:
                self._changed()
            return CancelAnswer(True, "offer withdrawn before the run")
        return CancelAnswer(False, "not running here")

    async def stop(self) -> None:
        """Stop every run (their sandboxes too) and wait for them."""
        for running in list(self._runs.values()):
            running.cancel.set()
            running.task.cancel()
        await asyncio.gather(*(r.task for r in list(self._runs.values())), return_exceptions=True)


def _refusal_for(request: bytes, reason: str) -> protocol.Answer:
    """Answer a malformed request in the shape its op expects, so the requester reads a refusal."""
    op = protocol.request_op(request)
    if op == "run":
        return RunAnswer(Outcome.declined(reason[: protocol.MAX_REASON]))
    if op == "cancel":
        return CancelAnswer(False, reason)
    return OfferAnswer(False, reason)
