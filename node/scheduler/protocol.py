"""The job protocol's messages, typed and schema-checked, shared by the requester and the executor.

Every message is a dag-cbor map with an ``op``: ``offer``, ``run``, ``offer_run`` (sent under
:data:`OFFER_RUN_PROTOCOL` or on a :data:`SESSION_PROTOCOL` stream only) or ``cancel`` from
the requester, answered by ``offer_answer``, ``run_answer`` (``offer_run``: the offer's answer,
then the run's when it ran) or ``cancel_answer``. Both sides build and parse them only through
these classes, so a field cannot mean one thing on one side and another on the other, and a
peer's message is checked (types, ranges, sizes) before anything acts on it: a malformed one
raises ProtocolError and is answered as such.

A run's answer carries an :class:`agents.outcome.Outcome` record, never a status string:
the requester decides on the outcome's kind alone (fail over only on node-side trouble),
so nothing an agent prints can change the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from agents.outcome import Outcome
from node.errors import NodeError
from node.scheduler.job import JobError, JobSpec
from node.scheduler.jobstore import is_job_id
from storage import dagcbor
from storage.cid import CID

PROTOCOL = "/mycel/job/2.0.0"  # 2: typed messages with outcome records (1 carried status strings)
# 2.1: 2.0 plus offer_run. A release that knows an op serves it under every version ID (one
# handler); a requester sends an op only under the first version that has it, so an executor
# of an older release refuses the stream itself ("na"), typed, and is asked in 2.0's messages
# instead (node.scheduler.versions). A new op takes a new minor version, never a new meaning
# for an old one.
OFFER_RUN_PROTOCOL = "/mycel/job/2.1.0"
PROTOCOLS = (PROTOCOL, OFFER_RUN_PROTOCOL)  # what an executor of this release serves, a stream per message
# 2.2: 2.1's messages, all of a requester's to one executor on one long-lived stream, each tagged
# with a request id (node.p2p.sessions): a stream per message cost a Yamux open and close and a
# multistream-select negotiation each. An executor of an older release answers "na" and is asked
# under 2.1 (or 2.0) as before.
SESSION_PROTOCOL = "/mycel/job/2.2.0"

MAX_REQUEST = 256 << 10  # an offer or run: the spec and a few peer IDs
MAX_ANSWER = 256 << 10  # a run answer: receipt plus the returned tail of the logs
MAX_LOGS = 64 << 10  # log bytes a run answer may carry
MAX_RECEIPT = 64 << 10
MAX_REASON = 1024
MAX_PROVIDERS = 16
MAX_PEER_ID = 128
MAX_AHEAD = 1 << 20  # runs an executor may say are ahead of an offer in its queue
MAX_BYTES = 1 << 62  # a byte count a peer may state (held or fetched input bytes)


class ProtocolError(NodeError, ValueError):
    """A job-protocol message is malformed: wrong shape, type, range or size."""


def _byte_count(record: dict[str, Any], key: str) -> int | None:
    """An optional byte count (absent: a peer of the previous version, or nothing to say)."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_BYTES:
        raise ProtocolError(f"{key} must be an integer from 0 to {MAX_BYTES}")
    return value


def _record(data: bytes, limit: int) -> dict[str, Any]:
    """A peer's job message: the shared bounds and codec checks, then the op every one has."""
    record = dagcbor.decode_message(data, limit, "a job message", ProtocolError)
    if not isinstance(record.get("op"), str):
        raise ProtocolError("a job message is a map with an op")
    return record


def _fields(record: dict[str, Any], op: str, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    keys = set(record) - {"op"}
    if record["op"] != op:
        raise ProtocolError(f"expected a {op} message, got {record['op']!r}")
    if not required <= keys or keys - required - optional:
        raise ProtocolError(f"a {op} message has exactly {sorted(required | optional)}")


def _job_id(record: dict[str, Any]) -> str:
    job_id = record["job_id"]
    if not isinstance(job_id, str) or not is_job_id(job_id):
        raise ProtocolError("job_id must be 32 lowercase hex digits")
    return job_id


def _spec(record: dict[str, Any]) -> JobSpec:
    try:
        return JobSpec.from_record(record["spec"])
    except JobError as exc:
        raise ProtocolError(f"bad job spec: {exc}") from None


def _reason(record: dict[str, Any]) -> str:
    reason = record["reason"]
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ProtocolError(f"reason must be a string of at most {MAX_REASON} characters")
    return reason


def spec_cid(spec: JobSpec) -> CID:
    """The CID of the spec as one node receives it: what an offer accepts and a run must match."""
    return spec.encode()[0]


@dataclass(frozen=True)
class Offer:
    """May this node run this job? Nothing is fetched or started until it accepts."""

    OP: ClassVar[str] = "offer"
    job_id: str
    spec: JobSpec

    def to_record(self) -> dict[str, Any]:
        return {"op": self.OP, "job_id": self.job_id, "spec": self.spec.to_record()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Offer:
        _fields(record, cls.OP, {"job_id", "spec"})
        return cls(_job_id(record), _spec(record))


@dataclass(frozen=True)
class Run:
    """Run the job an accepted offer named; ``providers`` are peers that hold its blocks."""

    OP: ClassVar[str] = "run"
    job_id: str
    spec: JobSpec
    providers: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        return {"op": self.OP, "job_id": self.job_id, "spec": self.spec.to_record(), "providers": list(self.providers)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Run:
        _fields(record, cls.OP, {"job_id", "spec", "providers"})
        providers = record["providers"]
        if (
            not isinstance(providers, list)
            or len(providers) > MAX_PROVIDERS
            or not all(isinstance(p, str) and 0 < len(p) <= MAX_PEER_ID for p in providers)
        ):
            raise ProtocolError(f"providers must be at most {MAX_PROVIDERS} peer IDs")
        return cls(_job_id(record), _spec(record), tuple(providers))


@dataclass(frozen=True)
class OfferRun:
    """An offer and, if the node accepts it with a core free now, its run, on one stream.

    The executor applies the offer's gate and then the run's, exactly as for the two messages
    sent apart; it answers the offer, and the run only if it started it. A node that would
    queue the job (``ahead`` > 0) answers the offer alone, and the requester sends the run
    with a timeout that counts the runs ahead. One stream and one round trip fewer per job."""

    OP: ClassVar[str] = "offer_run"
    job_id: str
    spec: JobSpec
    providers: tuple[str, ...] = ()

    @property
    def offer(self) -> Offer:
        return Offer(self.job_id, self.spec)

    @property
    def run(self) -> Run:
        return Run(self.job_id, self.spec, self.providers)

    def to_record(self) -> dict[str, Any]:
        return {**self.run.to_record(), "op": self.OP}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OfferRun:
        _fields(record, cls.OP, {"job_id", "spec", "providers"})
        run = Run.from_record({**record, "op": Run.OP})
        return cls(run.job_id, run.spec, run.providers)


@dataclass(frozen=True)
class Cancel:
    """Stop the run of this job: only the peer whose offer was accepted may ask."""

    OP: ClassVar[str] = "cancel"
    job_id: str

    def to_record(self) -> dict[str, Any]:
        return {"op": self.OP, "job_id": self.job_id}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Cancel:
        _fields(record, cls.OP, {"job_id"})
        return cls(_job_id(record))


Request = Offer | Run | OfferRun | Cancel


def decode_request(data: bytes) -> Request:
    record = _record(data, MAX_REQUEST)
    kinds: dict[str, type[Offer] | type[Run] | type[OfferRun] | type[Cancel]] = {
        "offer": Offer,
        "run": Run,
        "offer_run": OfferRun,
        "cancel": Cancel,
    }
    kind = kinds.get(record["op"])
    if kind is None:
        raise ProtocolError(f"unknown op {record['op']!r}")
    return kind.from_record(record)


def request_op(data: bytes) -> str | None:
    """The op a request names, or None when it is not a well-formed job message (to shape a refusal)."""
    try:
        op: str = _record(data, MAX_REQUEST)["op"]
    except ProtocolError:
        return None
    return op


class Decline(StrEnum):
    """Why an executor declined an offer, typed so the requester never parses the reason text.

    ``busy``: it could run the job but its slots and its own queue are full (``ahead`` runs
    wait there); the requester keeps the job queued and asks again once capacity appears.
    ``refused``: a placement rule, the payment or a quota says no; another node may say yes.
    """

    BUSY = "busy"
    REFUSED = "refused"


@dataclass(frozen=True)
class OfferAnswer:
    """An executor's yes or no. ``ahead``: runs that must end there before this one would get a
    core (accepted: 0 means it starts at once; declined busy: how long its queue is).

    ``held``: bytes of the job's inputs the executor holds whole now (accepted offers only;
    None from an executor of the previous version). The requester's view of who holds what
    comes from announcements, which may lag; this corrects the chosen node's explanation at
    no extra round trip, since the offer is sent anyway."""

    OP: ClassVar[str] = "offer_answer"
    accepted: bool
    reason: str
    decline: Decline | None = None  # None when accepted; an old executor's decline reads as refused
    ahead: int = 0
    held: int | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"op": self.OP, "accepted": self.accepted, "reason": self.reason[:MAX_REASON]}
        if self.decline is not None:
            record["decline"] = self.decline.value
        if self.ahead:
            record["ahead"] = self.ahead
        if self.held is not None:
            record["held"] = self.held
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OfferAnswer:
        _fields(record, cls.OP, {"accepted", "reason"}, frozenset({"decline", "ahead", "held"}))
        accepted = record["accepted"]
        if not isinstance(accepted, bool):
            raise ProtocolError("accepted must be true or false")
        decline = record.get("decline")
        if decline is not None and (accepted or decline not in set(Decline)):
            raise ProtocolError(f"decline must be one of {[d.value for d in Decline]}, and only when not accepted")
        ahead = record.get("ahead", 0)
        if not isinstance(ahead, int) or isinstance(ahead, bool) or not 0 <= ahead <= MAX_AHEAD:
            raise ProtocolError(f"ahead must be an integer from 0 to {MAX_AHEAD}")
        held = _byte_count(record, "held")
        if held is not None and not accepted:
            raise ProtocolError("held is stated only by an accepted offer")
        if not accepted and decline is None:
            decline = Decline.REFUSED
        return cls(accepted, _reason(record), Decline(decline) if decline is not None else None, ahead, held)

    @property
    def busy(self) -> bool:
        return self.decline is Decline.BUSY


@dataclass(frozen=True)
class RunAnswer:
    """What a run came to. ``result`` and ``receipt`` are present only when the agent ran.

    ``input_bytes_fetched``: the bytes of the job's inputs the executor received from the
    network to run it (0: it held every input), measured by its exchange, not predicted.
    None when it does not say: an executor of the previous version, a run that ended before
    its inputs were local, or a job over private data (its sizes are the policies' to give)."""

    OP: ClassVar[str] = "run_answer"
    outcome: Outcome
    result: CID | None = None
    receipt: bytes | None = None
    logs: bytes = b""
    input_bytes_fetched: int | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"op": self.OP, "outcome": self.outcome.to_record(), "logs": self.logs[-MAX_LOGS:]}
        if self.result is not None:
            record["result"] = self.result
        if self.receipt is not None:
            record["receipt"] = self.receipt
        if self.input_bytes_fetched is not None:
            record["input_bytes_fetched"] = self.input_bytes_fetched
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunAnswer:
        _fields(record, cls.OP, {"outcome", "logs"}, frozenset({"result", "receipt", "input_bytes_fetched"}))
        try:
            outcome = Outcome.from_record(record["outcome"])
        except ValueError as exc:
            raise ProtocolError(f"bad outcome: {exc}") from None
        result, receipt, logs = record.get("result"), record.get("receipt"), record["logs"]
        if result is not None and not isinstance(result, CID):
            raise ProtocolError("result must be a CID")
        if receipt is not None and (not isinstance(receipt, bytes) or len(receipt) > MAX_RECEIPT):
            raise ProtocolError(f"receipt must be at most {MAX_RECEIPT} bytes")
        if not isinstance(logs, bytes) or len(logs) > MAX_LOGS:
            raise ProtocolError(f"logs must be at most {MAX_LOGS} bytes")
        if outcome.is_ok and (result is None or receipt is None):
            raise ProtocolError("an ok run answer carries a result and a receipt")
        return cls(outcome, result, receipt, logs, _byte_count(record, "input_bytes_fetched"))


@dataclass(frozen=True)
class CancelAnswer:
    OP: ClassVar[str] = "cancel_answer"
    cancelled: bool
    reason: str

    def to_record(self) -> dict[str, Any]:
        return {"op": self.OP, "cancelled": self.cancelled, "reason": self.reason[:MAX_REASON]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CancelAnswer:
        _fields(record, cls.OP, {"cancelled", "reason"})
        if not isinstance(record["cancelled"], bool):
            raise ProtocolError("cancelled must be true or false")
        return cls(record["cancelled"], _reason(record))


Answer = OfferAnswer | RunAnswer | CancelAnswer
A = TypeVar("A", OfferAnswer, RunAnswer, CancelAnswer)


def encode(message: Request | Answer) -> bytes:
    return dagcbor.encode(message.to_record())


def decode_offer_run(frames: list[bytes]) -> tuple[OfferAnswer, RunAnswer | None]:
    """The answers to an ``offer_run``: the offer's, then the run's only if the offer was
    accepted (and the node started it); ProtocolError for any other shape."""
    if not 1 <= len(frames) <= 2:
        raise ProtocolError(f"expected one or two answer frames, got {len(frames)}")
    offered = OfferAnswer.from_record(_record(frames[0], MAX_ANSWER))
    if len(frames) == 1:
        return offered, None
    if not offered.accepted:
        raise ProtocolError("a declined offer is answered alone")
    return offered, RunAnswer.from_record(_record(frames[1], MAX_ANSWER))


def decode_answer(frames: list[bytes], kind: type[A]) -> A:
    """A peer's answer of the expected kind; ProtocolError for anything else (including none)."""
    if len(frames) != 1:
        raise ProtocolError(f"expected one answer frame, got {len(frames)}")
    return kind.from_record(_record(frames[0], MAX_ANSWER))
