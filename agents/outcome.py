"""The typed outcome of a run: what happened, which limit (if any) stopped it, and why.

Every layer speaks this type: the runtimes report it, the executor signs its label into the
receipt, the job protocol carries it as a small dag-cbor map, and the requester decides on
its ``kind`` alone. Nothing an agent prints can change an outcome: the kind is chosen by the
node from exit codes, signals, traps and its own limit accounting, never by parsing logs.

Kinds, and who is at fault:
- ``ok``: the agent exited 0 and its output was imported.
- ``failed``: the agent's own failure (non-zero exit, trap, crash, output that cannot be
  imported). Another node would fail the same way, so the requester does not fail over.
- ``killed``: the node stopped the agent at a limit (``limit`` names it: cpu, memory, wall,
  output, processes, files). Also the agent's doing: no failover.
- ``cancelled``: the client cancelled the job.
- ``node_error``: something on the node's side went wrong before or after the agent (inputs
  not fetchable, runtime missing, store full). The requester fails over to another node.
- ``declined``: the node refused the offer or the run (region, capacity, payment, no offer).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class OutcomeKind(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    KILLED = "killed"
    CANCELLED = "cancelled"
    NODE_ERROR = "node_error"
    DECLINED = "declined"


class Limit(enum.Enum):
    CPU = "cpu"
    MEMORY = "memory"
    WALL = "wall"
    OUTPUT = "output"
    PROCESSES = "processes"
    FILES = "files"


DETAIL_CAP = 1024  # bytes of detail kept on the wire and in receipts


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    limit: Limit | None = None
    detail: str = ""

    # -- constructors ------------------------------------------------------------------
    @classmethod
    def ok(cls) -> Outcome:
        return cls(OutcomeKind.OK)

    @classmethod
    def failed(cls, detail: str) -> Outcome:
        return cls(OutcomeKind.FAILED, None, detail)

    @classmethod
    def killed(cls, limit: Limit, detail: str = "") -> Outcome:
        return cls(OutcomeKind.KILLED, limit, detail)

    @classmethod
    def cancelled(cls, detail: str = "cancelled by the client") -> Outcome:
        return cls(OutcomeKind.CANCELLED, None, detail)

    @classmethod
    def node_error(cls, detail: str) -> Outcome:
        return cls(OutcomeKind.NODE_ERROR, None, detail)

    @classmethod
    def declined(cls, detail: str) -> Outcome:
        return cls(OutcomeKind.DECLINED, None, detail)

    # -- questions the requester asks --------------------------------------------------
    @property
    def is_ok(self) -> bool:
        return self.kind is OutcomeKind.OK

    @property
    def agent_at_fault(self) -> bool:
        """The agent itself failed or hit a limit: another node would do the same."""
        return self.kind in (OutcomeKind.FAILED, OutcomeKind.KILLED)

    @property
    def fail_over(self) -> bool:
        """Only node-side trouble (or a refusal) sends the job to another node."""
        return self.kind in (OutcomeKind.NODE_ERROR, OutcomeKind.DECLINED)

    @property
    def label(self) -> str:
        """One human line, e.g. ``killed: memory limit`` or ``failed: exit code 3``."""
        if self.kind is OutcomeKind.OK:
            return "ok"
        if self.kind is OutcomeKind.KILLED and self.limit is not None:
            head = f"killed: {self.limit.value} limit"
            return f"{head} ({self.detail})" if self.detail else head
        kind = self.kind.value.replace("_", " ")
        return f"{kind}: {self.detail}" if self.detail else kind

    def __str__(self) -> str:
        return self.label

    # -- wire form ---------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": self.kind.value, "detail": self.detail[:DETAIL_CAP]}
        if self.limit is not None:
            record["limit"] = self.limit.value
        return record

    @classmethod
    def from_record(cls, record: object) -> Outcome:
        """Parse a peer's outcome map; anything malformed raises ValueError."""
        if not isinstance(record, dict) or set(record) - {"kind", "limit", "detail"}:
            raise ValueError("an outcome is a map of kind, limit and detail")
        kind, limit, detail = record.get("kind"), record.get("limit"), record.get("detail", "")
        if not isinstance(kind, str) or not isinstance(detail, str) or len(detail) > DETAIL_CAP:
            raise ValueError("an outcome's kind and detail are short strings")
        if limit is not None and not isinstance(limit, str):
            raise ValueError("an outcome's limit is a string")
        try:
            parsed_kind = OutcomeKind(kind)
            parsed_limit = Limit(limit) if limit is not None else None
        except ValueError as exc:
            raise ValueError(f"unknown outcome: {exc}") from None
        if (parsed_limit is not None) != (parsed_kind is OutcomeKind.KILLED):
            raise ValueError("an outcome names a limit exactly when it is 'killed'")
        return cls(parsed_kind, parsed_limit, detail)
