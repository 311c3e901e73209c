"""Job specs (dag-cbor) and the job lifecycle: every transition kept with its time and reason."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agents.errors import ManifestError
from agents.manifest import check_limits
from node.errors import NodeError
from storage import dagcbor
from storage.cid import CID
from storage.errors import CodecError
from storage.privacy.access import MAX_ACCESS

# Sizes a spec may have: a peer's spec is read before anything else is known about the job.
MAX_INPUTS = 256
MAX_ARGS = 256
MAX_TEXT = 4096
MAX_REGIONS = 32
MAX_PAYMENT = 64 << 10
MAX_TRUSTED = 16
MAX_QUEUE_TIMEOUT = 7 * 86400  # seconds a job may wait for capacity, at most
_PEER_ID = re.compile(r"[1-9A-HJ-NP-Za-km-z]{1,128}")


class JobError(NodeError, ValueError):
    """A job spec is malformed, or a transition is not allowed."""


class JobState(StrEnum):
    QUEUED = "queued"
    PLACING = "placing"
    RUNNING = "running"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


# verifying -> running: a spot check re-runs an agreed result on a trusted node
_ALLOWED = {
    JobState.QUEUED: {JobState.PLACING, JobState.CANCELLED, JobState.FAILED},
    JobState.PLACING: {JobState.RUNNING, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED},
    JobState.RUNNING: {JobState.VERIFYING, JobState.PLACING, JobState.FAILED, JobState.CANCELLED},
    JobState.VERIFYING: {JobState.DONE, JobState.FAILED, JobState.PLACING, JobState.RUNNING, JobState.CANCELLED},
}


@dataclass(frozen=True)
class JobSpec:
    agent: CID
    inputs: dict[str, CID] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)  # overrides of the manifest's limits
    redundancy: int = 1
    regions: tuple[str, ...] = ()  # the job may run only on nodes in these regions (empty: anywhere)
    needs_gpu: bool = False
    max_price: int | None = None
    deadline: float | None = None
    payment: bytes | None = None  # the client's signed authorisation, once settlement exists
    access: bytes | None = None  # the client's signed access proof, for jobs over private data

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "agent": self.agent,
            "inputs": dict(self.inputs),
            "args": list(self.args),
            "limits": dict(self.limits),
            "redundancy": self.redundancy,
            "regions": list(self.regions),
            "needs_gpu": self.needs_gpu,
        }
        for key in ("max_price", "deadline", "payment", "access"):
            if getattr(self, key) is not None:
                record[key] = getattr(self, key)
        return record

    def encode(self) -> tuple[CID, bytes]:
        """The spec as a dag-cbor block; its CID is the job's content address."""
        return dagcbor.encode_with_cid(self.to_record())

    @classmethod
    def from_record(cls, record: Any) -> JobSpec:
        if not isinstance(record, dict):
            raise JobError("a job spec is a map")
        unknown = set(record) - {
            "agent",
            "inputs",
            "args",
            "limits",
            "redundancy",
            "regions",
            "needs_gpu",
            "max_price",
            "deadline",
            "payment",
            "access",
        }
        if unknown:
            raise JobError(f"unknown job field(s): {sorted(unknown)}")
        agent = record.get("agent")
        if not isinstance(agent, CID):
            raise JobError("agent must be the agent's CID")
        inputs = record.get("inputs", {})
        if (
            not isinstance(inputs, dict)
            or len(inputs) > MAX_INPUTS
            or not all(isinstance(k, str) and k and "/" not in k and isinstance(v, CID) for k, v in inputs.items())
        ):
            raise JobError("inputs must map plain names to CIDs")
        args = record.get("args", [])
        if (
            not isinstance(args, list)
            or len(args) > MAX_ARGS
            or not all(isinstance(a, str) and len(a) <= MAX_TEXT for a in args)
        ):
            raise JobError(f"args must be a list of at most {MAX_ARGS} strings of at most {MAX_TEXT} characters")
        try:
            limits = check_limits(record.get("limits", {}), "job")
        except ManifestError as exc:
            raise JobError(str(exc)) from None
        redundancy = record.get("redundancy", 1)
        if not isinstance(redundancy, int) or isinstance(redundancy, bool) or not 1 <= redundancy <= 16:
            raise JobError("redundancy must be an integer from 1 to 16")
        regions = record.get("regions", [])
        if (
            not isinstance(regions, list)
            or len(regions) > MAX_REGIONS
            or not all(isinstance(r, str) and 0 < len(r) <= 64 for r in regions)
        ):
            raise JobError("regions must be a list of region names")
        needs_gpu = record.get("needs_gpu", False)
        if not isinstance(needs_gpu, bool):
            raise JobError("needs_gpu must be true or false")
        max_price = record.get("max_price")
        if max_price is not None and (not isinstance(max_price, int) or max_price < 0):
            raise JobError("max_price must be a non-negative integer")
        deadline = record.get("deadline")
        if deadline is not None and (not isinstance(deadline, (int, float)) or isinstance(deadline, bool)):
            raise JobError("deadline must be a unix time")
        payment = record.get("payment")
        if payment is not None and (not isinstance(payment, bytes) or len(payment) > MAX_PAYMENT):
            raise JobError(f"payment must be at most {MAX_PAYMENT} bytes")
        access = record.get("access")
        if access is not None and (not isinstance(access, bytes) or len(access) > MAX_ACCESS):
            raise JobError(f"access must be the signed access proof, at most {MAX_ACCESS} bytes")
        return cls(
            agent,
            dict(inputs),
            tuple(args),
            dict(limits),
            redundancy,
            tuple(regions),
            needs_gpu,
            max_price,
            float(deadline) if deadline is not None else None,
            payment,
            access,
        )

    @classmethod
    def decode(cls, block: bytes) -> JobSpec:
        try:
            return cls.from_record(dagcbor.decode(block))
        except CodecError as exc:
            raise JobError(f"job spec is not valid DAG-CBOR: {exc}") from None


@dataclass(frozen=True)
class Checks:
    """What the client asks beyond receipts: spot re-execution, with probability ``spot_check``,
    on the first of the ``trusted`` nodes (peer IDs) that can run the job.

    Kept by the requester only, never in the spec sent to executors, so an executor cannot
    tell a checked job from an unchecked one. ``drawn`` is decided once, at submission.
    """

    spot_check: float = 0.0
    trusted: tuple[str, ...] = ()
    drawn: bool = False

    @classmethod
    def requested(cls, spot_check: Any, trusted: Any, draw: Any = None) -> Checks:
        """Validate a client's settings and draw whether this job is checked (JobError if unusable)."""
        if isinstance(spot_check, bool) or not isinstance(spot_check, (int, float)) or not 0 <= spot_check <= 1:
            raise JobError("spot_check must be a probability from 0 to 1")
        if (
            not isinstance(trusted, (list, tuple))
            or len(trusted) > MAX_TRUSTED
            or not all(isinstance(p, str) and _PEER_ID.fullmatch(p) for p in trusted)
        ):
            raise JobError(f"trusted must be a list of at most {MAX_TRUSTED} peer IDs")
        if spot_check > 0 and not trusted:
            raise JobError("spot_check needs trusted: the peer IDs of nodes you trust to re-run the job")
        roll = (draw or random.random)()
        return cls(float(spot_check), tuple(dict.fromkeys(trusted)), roll < spot_check)

    def to_record(self) -> dict[str, Any]:
        return {"spot_check": self.spot_check, "trusted": list(self.trusted), "drawn": self.drawn}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Checks:
        return cls(float(record["spot_check"]), tuple(record["trusted"]), bool(record["drawn"]))


def queue_timeout_of(value: Any) -> float:
    """A client's ``queue_timeout``: seconds the job may wait for a node with room (JobError if unusable)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_QUEUE_TIMEOUT:
        raise JobError(f"queue_timeout must be a number of seconds above 0 and at most {MAX_QUEUE_TIMEOUT}")
    return float(value)


@dataclass
class Transition:
    state: JobState
    at: float
    reason: str


@dataclass
class JobRecord:
    job_id: str
    spec: JobSpec
    transitions: list[Transition] = field(default_factory=list)
    placement: list[dict[str, Any]] = field(default_factory=list)  # the last decision, explained
    results: dict[str, str] = field(default_factory=dict)  # node peer ID -> result CID
    receipts: dict[str, str] = field(default_factory=dict)  # node peer ID -> CID of its signed receipt
    logs: dict[str, str] = field(default_factory=dict)  # node peer ID -> the agent's (capped) output there
    checks: Checks = field(default_factory=Checks)
    corroboration: dict[str, Any] = field(default_factory=dict)  # how the result was corroborated (verify)
    at_holders_of: str = ""  # a federated run: only holders of this input may run it (requester-only)
    group: str = ""  # the group job this run belongs to (node.scheduler.group), if any
    queue_timeout: float | None = None  # seconds it may wait for capacity (None: the node's default); requester only
    # node peer ID -> input bytes it fetched from the network to run the job, as it measured them
    # (kept per executor, like results: a redundant job's nodes each fetched what they lacked)
    input_bytes_fetched: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> JobState:
        return self.transitions[-1].state if self.transitions else JobState.QUEUED

    def move(self, state: JobState, reason: str) -> None:
        current = self.state
        if self.transitions and state not in _ALLOWED.get(current, set()):
            raise JobError(f"job {self.job_id} cannot go from {current.value} to {state.value}")
        self.transitions.append(Transition(state, time.time(), reason))

    def to_record(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "spec": self.spec.to_record(),
            "transitions": [{"state": t.state.value, "at": t.at, "reason": t.reason} for t in self.transitions],
            "placement": self.placement,
            "results": self.results,
            "receipts": self.receipts,
            "logs": self.logs,
            "checks": self.checks.to_record(),
            "corroboration": self.corroboration,
            **({"at_holders_of": self.at_holders_of} if self.at_holders_of else {}),
            **({"group": self.group} if self.group else {}),
            **({"queue_timeout": self.queue_timeout} if self.queue_timeout is not None else {}),
            **({"input_bytes_fetched": self.input_bytes_fetched} if self.input_bytes_fetched else {}),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JobRecord:
        return cls(
            job_id=record["job_id"],
            spec=JobSpec.from_record(record["spec"]),
            transitions=[Transition(JobState(t["state"]), float(t["at"]), t["reason"]) for t in record["transitions"]],
            placement=list(record.get("placement", [])),
            results=dict(record.get("results", {})),
            receipts=dict(record.get("receipts", {})),
            logs=dict(record.get("logs", {})),
            checks=Checks.from_record(record["checks"]) if "checks" in record else Checks(),
            corroboration=dict(record.get("corroboration", {})),
            at_holders_of=str(record.get("at_holders_of", "")),
            group=str(record.get("group", "")),
            queue_timeout=float(record["queue_timeout"]) if "queue_timeout" in record else None,
            input_bytes_fetched={str(p): int(n) for p, n in dict(record.get("input_bytes_fetched", {})).items()},
        )
