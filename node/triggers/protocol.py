"""``/mycel/trigger/1.0.0``: a standby asks a trigger's active node for the receipts after a number.

Request: dag-cbor ``{"op": "progress", "trigger": name, "after": n}`` (at most MAX_REQUEST
bytes). Reply: one frame ``{"op": "progress", "receipts": [signed receipt, ...]}`` with at
most MAX_RECEIPTS receipts, oldest first (empty when the node has no such trigger). The
standby verifies each receipt itself (signature, node, trigger, stream, seq continuity):
the active node is trusted for nothing but availability.
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


def parse_progress(raw: bytes) -> Progress:
    if len(raw) > MAX_REQUEST:
        raise TriggerProtocolError(f"a progress request is at most {MAX_REQUEST} bytes")
    try:
        message = dagcbor.decode(raw)
    except CodecError as exc:
        raise TriggerProtocolError(f"not DAG-CBOR: {exc}") from None
    if not isinstance(message, dict) or set(message) != {"op", "trigger", "after"} or message["op"] != "progress":
        raise TriggerProtocolError("a progress request is {op: progress, trigger, after}")
    name, after = message["trigger"], message["after"]
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise TriggerProtocolError("trigger must be a trigger name")
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < 1 << 63:
        raise TriggerProtocolError("after must be a non-negative integer")
    return Progress(name, after)


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
