"""What a trigger is: a typed spec (checked field by field, whoever sent it) and its cursor.

A trigger runs one deployed agent on this node when something happens:

* ``stream``: new entries of a stream held here (origin or replica), batched: every
  ``every_n`` entries or once the oldest waiting entry is ``every_ms`` old, whichever comes
  first (neither set: every entry). The agent finds the batch under ``/in/batch``.
* ``schedule``: on a schedule (:mod:`node.triggers.schedule`).
* ``invoke``: on ``POST /v1/agents/{name}/invoke``; the agent finds the body at ``/in/request``.

A stream trigger deployed with ``standby = PEER`` on a node holding a replica of the stream
follows PEER's receipts (:mod:`node.triggers.standby`) and takes over when PEER stops answering.
The active node's trigger names that standby as its ``follower`` to be fenced: it then publishes
an output only once the follower holds its receipt, and stops for good when the follower says it
took over (:mod:`node.triggers.fence`).

The cursor is what survives a restart: the last stream seq consumed, the receipt that
says so, the state CID the agent left, and the output stream's head (with the signed
output entry of the last invocation, re-appended if a crash came between the two).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import Any

from node.errors import NodeError
from node.triggers.schedule import Schedule, ScheduleError
from storage.cid import CID
from storage.errors import InvalidCIDError
from storage.peerid import public_key_from_peer_id
from storage.streamentry import NAME_PATTERN, is_stream_id

MAX_EVERY_N = 256  # entries in one batch at most (each is named in the receipt)
MAX_EVERY_MS = 24 * 3600 * 1000
MAX_TRIGGERS = 256  # per node
_FIELDS = frozenset(
    {"name", "agent", "kind", "stream", "every_n", "every_ms", "schedule", "state", "output", "standby", "follower"}
)


class TriggerKind(enum.Enum):
    STREAM = "stream"
    SCHEDULE = "schedule"
    INVOKE = "invoke"


class TriggerError(NodeError):
    """A trigger request that cannot be accepted, or a trigger that is not here; ``code`` is stable."""

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.code, self.status = code, status


@dataclass(frozen=True)
class TriggerSpec:
    name: str
    agent: CID
    kind: TriggerKind
    stream: str = ""
    every_n: int = 0
    every_ms: int = 0
    schedule: str = ""
    state: CID | None = None  # the state the first invocation starts from
    output: str = ""  # the name of the output stream ("" none), written with the trigger's key
    standby: str = ""  # the peer the trigger runs on while it lives ("" this node is the active one)
    follower: str = ""  # the peer standing by for this trigger, whose takeover fences it here ("" none)
    deployed_by: str = ""  # the peer that deployed it over /mycel/trigger ("" this node's API)
    regions: tuple[str, ...] = ()  # a stream trigger's effective regions: it runs (and takes over) only there
    placement: dict[str, Any] | None = None  # where it was placed and why (node.triggers.placement), bounded

    @property
    def batch_size(self) -> int:
        """Entries one invocation takes at most."""
        return self.every_n or (1 if not self.every_ms else MAX_EVERY_N)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "agent": self.agent, "kind": self.kind.value, "stream": self.stream,
                "every_n": self.every_n, "every_ms": self.every_ms, "schedule": self.schedule,
                "state": self.state, "output": self.output, "standby": self.standby,
                "follower": self.follower, "deployed_by": self.deployed_by, "regions": list(self.regions),
                "placement": self.placement}  # fmt: skip

    def json(self) -> dict[str, Any]:
        view = self.record()
        view["agent"], view["state"] = str(self.agent), str(self.state) if self.state else None
        return view

    def wire(self) -> dict[str, Any]:
        """The spec as a deploy on a peer sends it: :meth:`json` without ``regions`` and ``placement``
        when they are empty, since a node from before them refuses a spec with any unknown field."""
        view = self.json()
        for key in ("regions", "placement"):
            if not view[key]:
                del view[key]
        return view

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TriggerSpec:
        return cls(record["name"], record["agent"], TriggerKind(record["kind"]), record["stream"], record["every_n"],
                   record["every_ms"], record["schedule"], record["state"], record["output"],
                   record.get("standby", ""), record.get("follower", ""),
                   record.get("deployed_by", ""), tuple(record.get("regions", ())),
                   record.get("placement"))  # fmt: skip


def _int(body: dict[str, Any], key: str, high: int) -> int:
    value = body.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise TriggerError(f"bad_{key}", f"{key} must be an integer in [0, {high}]")
    return value


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > 200:
        raise TriggerError(f"bad_{key}", f"{key} must be a string of at most 200 characters")
    return value


def parse_request(body: Any, agent: CID) -> TriggerSpec:
    """The spec a deploy request asks for (``agent`` already resolved to a local bundle's CID)."""
    if not isinstance(body, dict):
        raise TriggerError("bad_request", "the body is a JSON object")
    unknown = set(body) - _FIELDS
    if unknown:
        raise TriggerError("bad_request", f"unknown fields: {', '.join(sorted(unknown))[:200]}")
    name = _str(body, "name")
    if not re.fullmatch(NAME_PATTERN, name):
        raise TriggerError("bad_name", f"a trigger name matches {NAME_PATTERN}")
    kind_text = _str(body, "kind")
    try:
        kind = TriggerKind(kind_text)
    except ValueError:
        raise TriggerError("bad_kind", "kind is stream, schedule or invoke") from None
    stream, schedule, output = _str(body, "stream"), _str(body, "schedule"), _str(body, "output")
    every_n, every_ms = _int(body, "every_n", MAX_EVERY_N), _int(body, "every_ms", MAX_EVERY_MS)
    if kind is TriggerKind.STREAM:
        if not is_stream_id(stream):
            raise TriggerError("bad_stream", "a stream trigger names a stream id ('st' and 52 base32 characters)")
    elif stream or every_n or every_ms:
        raise TriggerError("bad_request", "stream, every_n and every_ms belong to stream triggers only")
    if kind is TriggerKind.SCHEDULE:
        try:
            Schedule.parse(schedule)
        except ScheduleError as exc:
            raise TriggerError("bad_schedule", str(exc)) from None
    elif schedule:
        raise TriggerError("bad_request", "schedule belongs to schedule triggers only")
    if output and not re.fullmatch(NAME_PATTERN, output):
        raise TriggerError("bad_output", f"an output stream name matches {NAME_PATTERN}")
    standby, follower = _peer(body, kind, "standby"), _peer(body, kind, "follower")
    if standby and follower:
        raise TriggerError("bad_follower", "a standby trigger has no follower of its own (follow the active node)")
    state_text = body.get("state")
    state = None
    if state_text is not None:
        try:
            state = CID.parse(state_text) if isinstance(state_text, str) else None
        except (InvalidCIDError, ValueError):
            state = None
        if state is None:
            raise TriggerError("bad_state", "state is the CID of the initial state (a file or directory)")
    return TriggerSpec(name, agent, kind, stream, every_n, every_ms, schedule, state, output, standby, follower)


_PEER_ROLES = {"standby": "the node the trigger runs on now", "follower": "the node standing by for this trigger"}


def _peer(body: dict[str, Any], kind: TriggerKind, key: str) -> str:
    """``standby`` or ``follower``: a peer ID, for stream triggers only."""
    peer = _str(body, key)
    if peer:
        try:
            public_key_from_peer_id(peer)
        except (InvalidCIDError, ValueError):
            raise TriggerError(f"bad_{key}", f"{key} is the peer ID of {_PEER_ROLES[key]}") from None
        if kind is not TriggerKind.STREAM:
            raise TriggerError(f"bad_{key}", f"only a stream trigger has a {key} (it moves with its stream)")
    return peer


@dataclass(frozen=True)
class Cursor:
    """How far a trigger got; written in the same transaction as the receipt that moves it."""

    seq: int = 0  # the last stream entry consumed
    invocations: int = 0
    receipt: CID | None = None
    state: CID | None = None
    result: CID | None = None  # the last result (pinned: the state lives in it)
    output_seq: int = 0
    output_head: CID | None = None
    output_entry: bytes = b""  # the signed output entry at output_seq, until the stream holds it
    failures: int = 0  # invocations whose agent failed (their entries are consumed all the same)
    took_over: bool = False  # a standby that runs the trigger now (it fences the old active node)
    took_over_at: int = 0  # ... after this many receipts of the old active node, adopted here
    fenced: bool = False  # the follower took over: this node runs the trigger no more
    fenced_at: int = 0  # ... after this invocation: later ones here are void (their outputs never published)
    fenced_by: str = ""

    def record(self) -> dict[str, Any]:
        return {"seq": self.seq, "invocations": self.invocations, "receipt": self.receipt, "state": self.state,
                "result": self.result, "output_seq": self.output_seq, "output_head": self.output_head,
                "output_entry": self.output_entry, "failures": self.failures, "took_over": self.took_over,
                "took_over_at": self.took_over_at, "fenced": self.fenced, "fenced_at": self.fenced_at,
                "fenced_by": self.fenced_by}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Cursor:
        return cls(**record)

    def json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "invocations": self.invocations,
            "receipt": str(self.receipt) if self.receipt else None,
            "state": str(self.state) if self.state else None,
            "output_seq": self.output_seq,
            "failures": self.failures,
            "fenced": {"by": self.fenced_by, "after_invocation": self.fenced_at,
                       "void": max(0, self.invocations - self.fenced_at)} if self.fenced else None,
        }  # fmt: skip

    def advanced(self, **changes: Any) -> Cursor:
        return replace(self, **changes)


def batch_wait(pending: int, oldest_age_ms: float, spec: TriggerSpec) -> float | None:
    """Seconds until the batch is due (0: now; None: not until more entries come).

    ``pending`` entries wait, the oldest noticed ``oldest_age_ms`` ago. A batch is due at
    ``every_n`` entries or when the oldest is ``every_ms`` old, whichever comes first;
    with neither set, every entry is a batch.
    """
    if pending <= 0:
        return None
    if pending >= spec.batch_size:
        return 0.0
    if spec.every_ms:
        return max(0.0, (spec.every_ms - oldest_age_ms) / 1000)
    return None
