"""``/mycel/stream/1.0.0``: a replica asks a stream's holder for the entries after a seq.

Request: dag-cbor ``{"op": "since", "stream": id, "after": seq, "limit": n}`` (at most
MAX_REQUEST bytes, n at most MAX_BATCH). Reply: a first frame ``{"op": "entries",
"head": seq, "forked": bool}`` (head 0 when the holder has no such stream), then one
frame per signed entry, oldest first. Both sides build and parse messages only through
these functions, and the replica verifies every entry and the chain itself: the holder is
trusted for nothing but availability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.errors import NodeError
from storage import dagcbor
from storage.streamentry import MAX_ENTRY, MAX_SEQ, is_stream_id

PROTOCOL = "/mycel/stream/1.0.0"
MAX_REQUEST = 512
MAX_BATCH = 128


class StreamProtocolError(NodeError, ValueError):
    """A stream-protocol message is malformed: wrong shape, type, range or size."""


class HolderRefused(StreamProtocolError):
    """The holder refused the request: ``{"op": "refused", "reason", "detail"}`` (a stream policy's
    regions exclude the asking node: :mod:`node.streams.policy`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Since:
    stream: str
    after: int
    limit: int

    def encode(self) -> bytes:
        return dagcbor.encode({"op": "since", "stream": self.stream, "after": self.after, "limit": self.limit})


@dataclass(frozen=True)
class Entries:
    head: int
    forked: bool
    entries: list[bytes]

    def frames(self) -> list[bytes]:
        return [dagcbor.encode({"op": "entries", "head": self.head, "forked": self.forked}), *self.entries]


def _map(data: bytes, limit: int, op: str, keys: set[str]) -> dict[str, Any]:
    record = dagcbor.decode_message(data, limit, "a stream message", StreamProtocolError)
    if record.get("op") != op or set(record) != keys | {"op"}:
        raise StreamProtocolError(f"a {op} message is a map of exactly {sorted(keys | {'op'})}")
    return record


def _count(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise StreamProtocolError(f"{name} must be an integer in [{low}, {high}]")
    return value


def parse_since(data: bytes) -> Since:
    record = _map(data, MAX_REQUEST, "since", {"stream", "after", "limit"})
    if not isinstance(record["stream"], str) or not is_stream_id(record["stream"]):
        raise StreamProtocolError("stream must be a stream id")
    return Since(
        record["stream"], _count(record["after"], "after", 0, MAX_SEQ), _count(record["limit"], "limit", 1, MAX_BATCH)
    )


def parse_entries(frames: list[bytes], asked: Since) -> Entries:
    """The holder's answer; entries stay raw (the caller verifies each one off the loop)."""
    if not frames:
        raise StreamProtocolError("the holder sent no answer")
    refused = dagcbor.decode_message(frames[0], MAX_REQUEST + 512, "a stream message", StreamProtocolError)
    if refused.get("op") == "refused" and len(frames) == 1:
        reason, detail = refused.get("reason"), refused.get("detail")
        if set(refused) != {"op", "reason", "detail"} or not isinstance(reason, str) or not isinstance(detail, str):
            raise StreamProtocolError("a refused message is a map of exactly op, reason and detail (strings)")
        raise HolderRefused(reason[:64], detail[:300])
    first = _map(frames[0], MAX_REQUEST, "entries", {"head", "forked"})
    head = _count(first["head"], "head", 0, MAX_SEQ)
    if not isinstance(first["forked"], bool):
        raise StreamProtocolError("forked must be a boolean")
    entries = frames[1:]
    if len(entries) > asked.limit:
        raise StreamProtocolError(f"the holder sent {len(entries)} entries, {asked.limit} were asked for")
    for item in entries:
        if len(item) > MAX_ENTRY:
            raise StreamProtocolError(f"an entry is at most {MAX_ENTRY} bytes (got {len(item)})")
    return Entries(head, first["forked"], entries)
