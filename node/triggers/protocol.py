"""``/mycel/trigger/1.0.0``: a standby asks a trigger's active node for the receipts after a number.

Request: dag-cbor ``{"op": "progress", "trigger": name, "after": n}`` (at most MAX_REQUEST
bytes). Reply: one frame ``{"op": "progress", "receipts": [signed receipt, ...]}`` with at
most MAX_RECEIPTS receipts, oldest first (empty when the node has no such trigger). The
standby verifies each receipt itself (signature, node, trigger, stream, seq continuity):
the active node is trusted for nothing but availability. ``after`` is also the follower's
acknowledgement: it holds the first ``after`` receipts.

A node deploys a trigger on a peer (a pipeline stage placed where its input stream is):
``{"op": "deploy", "spec": {...}}`` (the HTTP deploy body, the agent as its CID; at most
MAX_DEPLOY bytes); the reply is ``{"op": "deploy", "status": HTTP status, "error": code ("" on
success), "detail": text, "view": JSON of the deployed trigger (b"" on failure)}``. The peer
fetches the agent's bundle from the asking node and checks the spec as it checks its own API's.

A standby that took over tells the old active node so: ``{"op": "fence", "trigger": name,
"at": n}`` (it took over after invocation n); the reply is ``{"op": "fence", "fenced": bool}``
(true once the node runs the trigger no more, false when it has no such trigger followed by
the asking peer).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from node.errors import NodeError
from storage import dagcbor
from storage.streamentry import NAME_PATTERN

PROTOCOL = "/mycel/trigger/1.0.0"
MAX_REQUEST = 256
MAX_RECEIPTS = 16
MAX_RECEIPT = 64 << 10
MAX_DEPLOY = 8 << 10  # a deploy request (a spec's strings are 200 characters at most)
MAX_VIEW = 16 << 10  # the JSON of a deployed trigger in a deploy reply


class TriggerProtocolError(NodeError, ValueError):
    """A trigger-protocol message is malformed: wrong shape, type, range or size."""


@dataclass(frozen=True)
class Progress:
    trigger: str
    after: int

    def encode(self) -> bytes:
        return dagcbor.encode({"op": "progress", "trigger": self.trigger, "after": self.after})


@dataclass(frozen=True)
class Fence:
    """The standby took over after invocation ``at``: the active node's later invocations are void."""

    trigger: str
    at: int

    def encode(self) -> bytes:
        return dagcbor.encode({"op": "fence", "trigger": self.trigger, "at": self.at})


@dataclass(frozen=True)
class Deploy:
    """Deploy this trigger here (``spec`` is checked by node.triggers.model.parse_request)."""

    spec: dict[str, Any]

    def encode(self) -> bytes:
        return dagcbor.encode({"op": "deploy", "spec": self.spec})


@dataclass(frozen=True)
class Deployed:
    status: int
    error: str  # "" on success
    detail: str
    view: dict[str, Any] | None  # the deployed trigger, as the peer's API would show it

    def encode(self) -> list[bytes]:
        view = json.dumps(self.view).encode() if self.view is not None else b""
        return [dagcbor.encode({"op": "deploy", "status": self.status, "error": self.error,
                                "detail": self.detail[:500], "view": view})]  # fmt: skip


def _one_frame(frames: list[bytes], limit: int, what: str) -> dict[str, Any]:
    """A reply is exactly one bounded DAG-CBOR map."""
    if len(frames) != 1:
        raise TriggerProtocolError(f"{what} is one frame (got {len(frames)})")
    return dagcbor.decode_message(frames[0], limit, what, TriggerProtocolError)


def parse_deployed(frames: list[bytes]) -> Deployed:
    message = _one_frame(frames, MAX_VIEW + 1024, "a deploy reply")
    if set(message) != {"op", "status", "error", "detail", "view"}:
        raise TriggerProtocolError("a deploy reply is {op: deploy, status, error, detail, view}")
    status, error, detail, view = message["status"], message["error"], message["detail"], message["view"]
    if message["op"] != "deploy" or not isinstance(status, int) or isinstance(status, bool) or not 200 <= status < 600:
        raise TriggerProtocolError("a deploy reply's status is an HTTP status")
    if not isinstance(error, str) or not isinstance(detail, str) or len(error) > 64 or len(detail) > 500:
        raise TriggerProtocolError("a deploy reply's error and detail are short strings")
    if not isinstance(view, bytes) or len(view) > MAX_VIEW:
        raise TriggerProtocolError(f"a deploy reply's view is at most {MAX_VIEW} bytes")
    parsed = None
    if not error:
        try:
            parsed = json.loads(view)
        except (json.JSONDecodeError, UnicodeDecodeError):
            parsed = None
        if not isinstance(parsed, dict):
            raise TriggerProtocolError("a successful deploy reply carries the trigger as a JSON object")
    return Deployed(status, error, detail, parsed)


_SHAPES = {"progress": "after", "fence": "at"}


def parse_request(raw: bytes) -> Progress | Fence | Deploy:
    message = dagcbor.decode_message(raw, MAX_DEPLOY, "a trigger request", TriggerProtocolError)
    op = message.get("op")
    if op == "deploy":
        if set(message) != {"op", "spec"} or not isinstance(message["spec"], dict):
            raise TriggerProtocolError("a deploy request is {op: deploy, spec}")
        return Deploy(message["spec"])
    if len(raw) > MAX_REQUEST:
        raise TriggerProtocolError(f"a progress or fence request is at most {MAX_REQUEST} bytes")
    number_key = _SHAPES.get(op) if isinstance(op, str) else None
    if number_key is None or set(message) != {"op", "trigger", number_key}:
        raise TriggerProtocolError("a trigger request is {op: progress, trigger, after} or {op: fence, trigger, at}")
    name, number = message["trigger"], message[number_key]
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise TriggerProtocolError("trigger must be a trigger name")
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 1 << 63:
        raise TriggerProtocolError(f"{number_key} must be a non-negative integer")
    return Progress(name, number) if op == "progress" else Fence(name, number)


def parse_progress(raw: bytes) -> Progress:
    request = parse_request(raw)
    if not isinstance(request, Progress):
        raise TriggerProtocolError("a progress request is {op: progress, trigger, after}")
    return request


def encode_fenced(fenced: bool) -> list[bytes]:
    return [dagcbor.encode({"op": "fence", "fenced": fenced})]


def parse_fenced(frames: list[bytes]) -> bool:
    message = _one_frame(frames, 64, "a fence reply")
    if set(message) != {"op", "fenced"} or message["op"] != "fence":
        raise TriggerProtocolError("a fence reply is {op: fence, fenced}")
    if not isinstance(message["fenced"], bool):
        raise TriggerProtocolError("fenced is a boolean")
    return message["fenced"]


def encode_receipts(receipts: list[bytes]) -> list[bytes]:
    return [dagcbor.encode({"op": "progress", "receipts": receipts[:MAX_RECEIPTS]})]


def parse_receipts(frames: list[bytes]) -> list[bytes]:
    message = _one_frame(frames, MAX_RECEIPTS * MAX_RECEIPT + 64, "a progress reply")
    if set(message) != {"op", "receipts"} or message["op"] != "progress":
        raise TriggerProtocolError("a progress reply is {op: progress, receipts}")
    receipts = message["receipts"]
    if not isinstance(receipts, list) or len(receipts) > MAX_RECEIPTS:
        raise TriggerProtocolError(f"receipts is a list of at most {MAX_RECEIPTS}")
    if not all(isinstance(item, bytes) and len(item) <= MAX_RECEIPT for item in receipts):
        raise TriggerProtocolError(f"each receipt is at most {MAX_RECEIPT} bytes")
    return list(receipts)
