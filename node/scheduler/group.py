"""Group (federated) jobs: one agent run once per dataset, each run at that dataset's holder,
in parallel; then an aggregator run over the partial results; one id for the whole group.

A group is a parent record over ordinary jobs: each run is a job of the same machinery
(decide, dispatch, verify; a receipt per run), restricted to the holders of its dataset by
the ``holder`` placement rule, so a dataset never moves to compute. The aggregator is one
more job whose inputs are the runs' result CIDs, mounted under ``/in/<dataset name>`` (plus
the group's shared inputs).

Failure policy: a run whose holder declines, dies or times out fails over to another holder
of the same dataset (a replica), exactly as any job fails over; with no replica left, or when
the agent itself fails, the group fails at once, naming each dataset whose run failed and why.
The aggregator never runs over a partial set: its inputs are exactly the datasets named.

Private data: every run's spec is built by :meth:`GroupSpec.run_spec` alone; the holder's
running gate (on the executing side) decides from that spec whether the agent may run on its
data, and what of the result may leave (the partial result that goes to the aggregator).
A client's signed access proof per dataset (for exactly that run's agent, inputs and args,
which ``run_spec`` fixes and the client computes alike: :func:`run_subject`) travels in the
group spec as ``access[name]`` and goes into that run's ``JobSpec.access``. A private
dataset's holders deny holding it to anyone else (this requesting node included), so a run
that carries an access proof is not restricted to the holders this node can see: every
candidate's own running gate decides, and a node that does not hold the dataset privately
declines the offer at once (:class:`node.privacy.running.RunGate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from agents.errors import ManifestError
from agents.manifest import check_limits
from node.scheduler.job import MAX_ARGS, MAX_REGIONS, MAX_TEXT, JobError, JobRecord, JobSpec, JobState
from node.scheduler.jobstore import new_job_id
from storage.cid import CID
from storage.privacy.access import MAX_ACCESS, job_subject
from storage.privacy.dp import DpTerms
from storage.privacy.errors import PrivacyError

if TYPE_CHECKING:
    from node.scheduler.dispatcher import JobService

log = logging.getLogger("mycelnet.jobs")

MAX_DATASETS = 64
MAX_SHARED = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class GroupState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"  # the per-dataset runs
    AGGREGATING = "aggregating"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (GroupState.DONE, GroupState.FAILED, GroupState.CANCELLED)


def _names(value: Any, what: str, limit: int) -> dict[str, CID]:
    if not isinstance(value, dict) or len(value) > limit:
        raise JobError(f"{what} must map at most {limit} names to CIDs")
    for name, cid in value.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or not isinstance(cid, CID):
            raise JobError(f"{what}: {name!r} must be a plain name (letters, digits, . _ -; up to 64) naming a CID")
    return dict(value)


def _texts(value: Any, what: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or len(value) > MAX_ARGS
        or not all(isinstance(a, str) and len(a) <= MAX_TEXT for a in value)
    ):
        raise JobError(f"{what} must be a list of at most {MAX_ARGS} strings of at most {MAX_TEXT} characters")
    return tuple(value)


def _access(value: Any, datasets: dict[str, CID]) -> dict[str, bytes]:
    """Access proofs by dataset name: only for datasets of the group, each bounded (the holder checks them)."""
    if not isinstance(value, dict):
        raise JobError("access must map dataset names to signed access proofs")
    unknown = sorted(str(name)[:64] for name in value if name not in datasets)
    if unknown:
        raise JobError(f"access names dataset(s) {unknown} that the group does not")
    for name, proof in value.items():
        if not isinstance(proof, bytes) or not 0 < len(proof) <= MAX_ACCESS:
            raise JobError(f"access[{name}] must be a signed access proof of at most {MAX_ACCESS} bytes")
    return dict(value)


@dataclass(frozen=True)
class GroupSpec:
    """What a client asks: ``agent`` over each of ``datasets`` (seen at ``/in/<input>``), then
    ``aggregator`` over their results; ``shared`` inputs go to every run and the aggregator."""

    agent: CID
    datasets: dict[str, CID]
    aggregator: CID
    input: str = "data"
    shared: dict[str, CID] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    aggregator_args: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)
    regions: tuple[str, ...] = ()
    access: dict[str, bytes] = field(default_factory=dict)  # dataset name -> the client's signed access proof
    dp: DpTerms | None = None  # differential privacy of each run's update: given to every run, its loss recorded

    def run_inputs(self, name: str) -> dict[str, CID]:
        return {self.input: self.datasets[name], **self.shared}

    @property
    def run_args(self) -> tuple[str, ...]:
        """Each run's arguments: the client's, then the DP terms the node gives (the proof signs both)."""
        return (*self.args, *(self.dp.args() if self.dp is not None else ()))

    def run_spec(self, name: str) -> JobSpec:
        """The job that runs the agent on dataset ``name`` (the holder's running gate reads it)."""
        return JobSpec(self.agent, self.run_inputs(name), self.run_args, dict(self.limits), regions=self.regions,
                       access=self.access.get(name))  # fmt: skip

    def run_subject(self, name: str) -> CID:
        """What the client's access proof for dataset ``name`` must sign (its run's agent, inputs, args)."""
        return job_subject(self.agent, self.run_inputs(name), self.run_args)

    def aggregate_spec(self, results: dict[str, CID]) -> JobSpec:
        """The aggregator's job: every run's result under its dataset's name, and the shared inputs."""
        if set(results) != set(self.datasets):
            missing = sorted(set(self.datasets) - set(results))
            raise JobError(f"the aggregator needs every dataset's result; missing {missing}")
        return JobSpec(self.aggregator, {**results, **self.shared}, self.aggregator_args, dict(self.limits),
                       regions=self.regions)  # fmt: skip

    def to_record(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "datasets": dict(self.datasets),
            "aggregator": self.aggregator,
            "input": self.input,
            "shared": dict(self.shared),
            "args": list(self.args),
            "aggregator_args": list(self.aggregator_args),
            "limits": dict(self.limits),
            "regions": list(self.regions),
            "access": dict(self.access),
            **({"dp": self.dp.record()} if self.dp is not None else {}),
        }

    @classmethod
    def from_record(cls, record: Any) -> GroupSpec:
        """Validate a client's (or the store's) group spec; JobError says what is wrong."""
        if not isinstance(record, dict):
            raise JobError("a group job is a map")
        allowed = {"agent", "datasets", "aggregator", "input", "shared", "args", "aggregator_args", "limits", "regions",
                   "access", "dp"}  # fmt: skip
        unknown = set(record) - allowed
        if unknown:
            raise JobError(f"unknown group field(s): {sorted(unknown)}; allowed: {sorted(allowed)}")
        agent, aggregator = record.get("agent"), record.get("aggregator")
        if not isinstance(agent, CID) or not isinstance(aggregator, CID):
            raise JobError("agent and aggregator must be agent CIDs")
        datasets = _names(record.get("datasets"), "datasets", MAX_DATASETS)
        if not datasets:
            raise JobError("datasets must name at least one dataset")
        shared = _names(record.get("shared", {}), "shared", MAX_SHARED)
        name = record.get("input", "data")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise JobError("input must be a plain name: where each run sees its dataset under /in")
        clash = (set(datasets) & set(shared)) | ({name} & set(shared))
        if clash:
            raise JobError(f"name(s) {sorted(clash)} used twice: runs and the aggregator see inputs by name")
        try:
            limits = check_limits(record.get("limits", {}), "group job")
        except ManifestError as exc:
            raise JobError(str(exc)) from None
        regions = record.get("regions", [])
        if (
            not isinstance(regions, list)
            or len(regions) > MAX_REGIONS
            or not all(isinstance(r, str) and 0 < len(r) <= 64 for r in regions)
        ):
            raise JobError("regions must be a list of region names")
        try:
            dp = DpTerms.from_record(record["dp"]) if record.get("dp") is not None else None
        except PrivacyError as exc:
            raise JobError(exc.detail) from None
        if dp is not None and len(record.get("args", [])) > MAX_ARGS - len(dp.args()):
            raise JobError(
                f"with dp, args may have at most {MAX_ARGS - len(dp.args())} entries (the terms are two more)"
            )
        return cls(agent, datasets, aggregator, name, shared, _texts(record.get("args", []), "args"),
                   _texts(record.get("aggregator_args", []), "aggregator_args"), dict(limits),
                   tuple(regions), _access(record.get("access", {}), datasets), dp)  # fmt: skip


@dataclass
class GroupRecord:
    group_id: str
    spec: GroupSpec
    runs: dict[str, str] = field(default_factory=dict)  # dataset name -> its run's job id
    aggregate: str = ""  # the aggregator's job id, once submitted
    transitions: list[tuple[str, float, str]] = field(default_factory=list)

    @property
    def state(self) -> GroupState:
        return GroupState(self.transitions[-1][0]) if self.transitions else GroupState.QUEUED

    def to_record(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "spec": self.spec.to_record(),
            "runs": dict(self.runs),
            "aggregate": self.aggregate,
            "transitions": [{"state": s, "at": at, "reason": why} for s, at, why in self.transitions],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> GroupRecord:
        return cls(
            record["group_id"],
            GroupSpec.from_record(record["spec"]),
            dict(record["runs"]),
            str(record["aggregate"]),
            [(t["state"], float(t["at"]), t["reason"]) for t in record["transitions"]],
        )


class GroupService:
    """Drives group jobs on the requesting node through its :class:`JobService`."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, group_id: str) -> GroupRecord | None:
        record = self.jobs.jobs.group(group_id)
        return None if record is None else GroupRecord.from_record(record)

    def submit(self, spec: GroupSpec, group_id: str | None = None) -> GroupRecord:
        group = GroupRecord(group_id or new_job_id(), spec)
        self._move(group, GroupState.QUEUED, f"submitted: {len(spec.datasets)} dataset(s), then the aggregator")
        self._start(group)
        return group

    def resume_unfinished(self) -> int:
        unfinished = [GroupRecord.from_record(r) for r in self.jobs.jobs.groups()]
        unfinished = [g for g in unfinished if not g.state.final]
        for group in unfinished:
            self._start(group)
        return len(unfinished)

    async def cancel(self, group_id: str) -> GroupRecord | None:
        """Cancel the group: every run still going and the aggregator; a finished group stays as it ended."""
        group = self.get(group_id)
        if group is None or group.state.final:
            return group
        task = self._tasks.pop(group_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job_id in [*group.runs.values(), *([group.aggregate] if group.aggregate else [])]:
            await self.jobs.cancel(job_id)
        self._move(group, GroupState.CANCELLED, "cancelled by the client")
        return group

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _start(self, group: GroupRecord) -> None:
        task = asyncio.create_task(self._drive(group))
        self._tasks[group.group_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(group.group_id, None))

    def _move(self, group: GroupRecord, state: GroupState, reason: str) -> None:
        group.transitions.append((state.value, time.time(), reason))
        self.jobs.jobs.save_group(group.group_id, group.to_record())

    async def _drive(self, group: GroupRecord) -> None:
        try:
            await self._run(group)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # nothing is lost silently: the group says what happened
            log.exception("group %s", group.group_id)
            if not group.state.final:
                self._move(group, GroupState.FAILED, f"internal error: {type(exc).__name__}: {exc}")

    def _job(self, job_id: str, spec: JobSpec, group: str, at_holders_of: str = "") -> None:
        """Submit the job unless it exists already (a resumed group reuses the runs it recorded)."""
        if self.jobs.jobs.get(job_id) is None:
            self.jobs.submit(spec, job_id, at_holders_of=at_holders_of, group=group)

    async def _run(self, group: GroupRecord) -> None:
        spec = group.spec
        if not group.runs:  # recorded before any is submitted: a restart resumes the same runs
            group.runs = {name: new_job_id() for name in sorted(spec.datasets)}
            why = f"running the agent at the holder of each of {len(group.runs)} dataset(s)"
            self._move(group, GroupState.RUNNING, why)
        for name, job_id in group.runs.items():  # a private run: the candidates' own gates find its holder
            self._job(job_id, spec.run_spec(name), group.group_id, "" if name in spec.access else spec.input)
        runs = dict(zip(group.runs, await asyncio.gather(*(self.jobs.finished(j) for j in group.runs.values())),
                        strict=True))  # fmt: skip
        failed = {name: job for name, job in runs.items() if job.state is not JobState.DONE}
        if failed:
            why = "; ".join(f"dataset {name}: {_last_reason(job)}" for name, job in sorted(failed.items()))
            self._move(group, GroupState.FAILED, f"{len(failed)} of {len(runs)} run(s) failed, no aggregate: {why}")
            return
        results = {name: CID.parse(_result(job)) for name, job in runs.items()}
        if not group.aggregate:
            group.aggregate = new_job_id()
            self._move(group, GroupState.AGGREGATING, f"all {len(runs)} run(s) done; aggregating their results")
        self._job(group.aggregate, spec.aggregate_spec(results), group.group_id)
        aggregate = await self.jobs.finished(group.aggregate)
        if aggregate.state is not JobState.DONE:
            self._move(group, GroupState.FAILED, f"aggregator: {_last_reason(aggregate)}")
            return
        self._move(group, GroupState.DONE, f"result {_result(aggregate)}")


def _last_reason(job: JobRecord) -> str:
    return job.transitions[-1].reason if job.transitions else job.state.value


def _result(job: JobRecord) -> str:
    return next(iter(job.results.values()))


def run_json(job: JobRecord | None, job_id: str) -> dict[str, Any]:
    """One run as the API shows it: state, where it ran, its result and receipt."""
    if job is None:
        return {"job_id": job_id, "state": "queued", "node": None, "result": None, "receipt": None}
    node = sorted(job.results)[0] if job.results else None
    chosen = [r["peer_id"] for r in job.placement if r.get("verdict") == "chosen"]
    return {
        "job_id": job.job_id,
        "state": job.state.value,
        "node": node or (chosen[0] if chosen else None),
        "result": job.results.get(node) if node else None,
        "receipt": job.receipts.get(node) if node else None,
        "reason": _last_reason(job),
    }


def group_json(service: GroupService, group: GroupRecord) -> dict[str, Any]:
    """The group as ``GET /v1/groups/{id}`` (and ``GET /v1/jobs/{id}``) shows it."""
    store = service.jobs.jobs
    aggregate = store.get(group.aggregate) if group.aggregate else None
    last = group.transitions[-1] if group.transitions else ("queued", 0.0, "")
    # what each run spends, from the terms the node gave it (never from what an agent reports)
    dp = {"dp": group.spec.dp.spent()} if group.spec.dp is not None else {}
    return {
        "job_id": group.group_id,
        "group": True,
        "state": group.state.value,
        "reason": last[2],
        "agent": str(group.spec.agent),
        "aggregator": str(group.spec.aggregator),
        "datasets": {name: str(cid) for name, cid in group.spec.datasets.items()},
        "runs": {
            name: {"dataset": str(group.spec.datasets[name]), **run_json(store.get(j), j), **dp}
            for name, j in group.runs.items()
        },
        "aggregate": run_json(aggregate, group.aggregate) if group.aggregate else None,
        "result": _result(aggregate) if group.state is GroupState.DONE and aggregate is not None else None,
        "transitions": [{"state": s, "at": at, "reason": why} for s, at, why in group.transitions],
    }


def group_placement(service: GroupService, group: GroupRecord) -> dict[str, Any]:
    """Every run's placement (candidates with verdict and reason), then the aggregator's."""
    store = service.jobs.jobs
    runs = []
    for name, job_id in [*group.runs.items(), *([("(aggregate)", group.aggregate)] if group.aggregate else [])]:
        job = store.get(job_id)
        runs.append({"dataset": name, "job_id": job_id, "state": job.state.value if job else "queued",
                     "candidates": job.placement if job else []})  # fmt: skip
    aggregate = store.get(group.aggregate) if group.aggregate else None
    return {"job_id": group.group_id, "group": True, "runs": runs,
            "candidates": aggregate.placement if aggregate else []}  # fmt: skip
