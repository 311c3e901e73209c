"""``/mycel/trigger/1.0.0``: a standby asks a trigger's active node for the receipts after a number.

Request: dag-cbor ``{"op": "progress", "trigger": name, "after": n}`` (at most MAX_REQUEST
bytes). Reply: one frame ``{"op": "progress", "receipts": [signed receipt, ...]}`` with at
most MAX_RECEIPTS receipts, oldest first (empty when the node has no such trigger). The
standby verifies each receipt itself (signature, node, trigger, stream, seq continuity):
the active node is trusted for nothing but availability. ``after`` is also the follower's
acknowledgement: it holds the first ``after`` receipts.

A standby that took over tells the old active node so: ``{"op": "fence", "trigger": name,
"at": n}`` (it took over after invocation n); the reply is ``{"op": "fence", "fenced": bool}``
(true once the node runs the trigger no more, false when it has no such trigger followed by
the asking peer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from node.errors import NodeError
from storage import dagcbor
from storage.errors import CodecError
from storage.streamentry import NAME_PATTERN

PROTOCOL = "/mycel/trigger/1.0.0"
MAX_REQUEST = 256
MAX_RECEIPTS = 16
MAX_RECEIPT = 64 << 10


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


_SHAPES = {"progress": "after", "fence": "at"}


def parse_request(raw: bytes) -> Progress | Fence:
    if len(raw) > MAX_REQUEST:
        raise TriggerProtocolError(f"a trigger request is at most {MAX_REQUEST} bytes")
    try:
        message = dagcbor.decode(raw)
    except CodecError as exc:
        raise TriggerProtocolError(f"not DAG-CBOR: {exc}") from None
    op = message.get("op") if isinstance(message, dict) else None
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
    if len(frames) != 1 or len(frames[0]) > 64:
        raise TriggerProtocolError("a fence reply is one small frame")
    try:
        message = dagcbor.decode(frames[0])
    except CodecError as exc:
        raise TriggerProtocolError(f"not DAG-CBOR: {exc}") from None
    if not isinstance(message, dict) or set(message) != {"op", "fenced"} or message["op"] != "fence":
        raise TriggerProtocolError("a fence reply is {op: fence, fenced}")
    if not isinstance(message["fenced"], bool):
        raise TriggerProtocolError("fenced is a boolean")
    return message["fenced"]


def encode_receipts(receipts: list[bytes]) -> list[bytes]:
    return [dagcbor.encode({"op": "progress", "receipts": receipts[:MAX_RECEIPTS]})]


def parse_receipts(frames: list[bytes]) -> list[bytes]:
    if len(frames) != 1 or len(frames[0]) > MAX_RECEIPTS * MAX_RECEIPT + 64:
        raise TriggerProtocolError("a progress reply is one bounded frame")
    try:
        message = dagcbor.decode(frames[0])
    except CodecError as exc:
        raise TriggerProtocolError(f"not DAG-CBOR: {exc}") from None
    if not isinstance(message, dict) or set(message) != {"op", "receipts"} or message["op"] != "progress":
        raise TriggerProtocolError("a progress reply is {op: progress, receipts}")
    receipts = message["receipts"]
    if not isinstance(receipts, list) or len(receipts) > MAX_RECEIPTS:
        raise TriggerProtocolError(f"receipts is a list of at most {MAX_RECEIPTS}")
    if not all(isinstance(item, bytes) and len(item) <= MAX_RECEIPT for item in receipts):
        raise TriggerProtocolError(f"each receipt is at most {MAX_RECEIPT} bytes")
    return list(receipts)
