"""``/mycel/stream/1.0.0``: a replica asks a stream's holder for the entries after a seq.

Request: dag-cbor ``{"op": "since", "stream": id, "after": seq, "limit": n}`` (at most
MAX_REQUEST bytes, n at most MAX_BATCH). Reply: a first frame ``{"op": "entries",
"head": seq, "forked": bool}`` (head 0 when the holder has no such stream), then one
frame per signed entry, oldest first. Both sides build and parse messages only through
these functions, and the replica verifies every entry and the chain itself: the holder is
trusted for nothing but availability.

Live replication (:mod:`node.streams.live`) adds two requests on the same protocol:

* ``{"op": "watch", "stream": id}`` (at most MAX_REQUEST bytes), replica to holder: tell me
  when this stream's head moves. Reply ``{"op": "watching", "ttl": seconds}``, 0 when the
  holder refused (no such stream here, or its bounds on watches are reached).
* ``{"op": "heads", "heads": {id: seq, ...}}`` (1..MAX_NOTICE_HEADS streams, at most
  MAX_NOTICE bytes), holder to a replica that watches: these heads moved. A hint only: the
  replica acts on it only for streams it pulls from that peer, by pulling (and verifying) as
  ever. Reply: no frames.

A node from before them answers either with an empty reply (its parser knows only
``since``), which the watching side reads as "no live notices from this holder".
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
MAX_NOTICE_HEADS = 64  # streams named in one heads notice (= the watches one peer may hold)
MAX_NOTICE = 8192  # bytes of a heads notice (64 stream ids with their seqs take ~4.3 KiB)
MAX_TTL = 3600


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


@dataclass(frozen=True)
class Watch:
    stream: str

    def encode(self) -> bytes:
        return dagcbor.encode({"op": "watch", "stream": self.stream})


@dataclass(frozen=True)
class Watching:
    ttl: int  # seconds the holder keeps the watch without a renewal; 0: refused

    def frames(self) -> list[bytes]:
        return [dagcbor.encode({"op": "watching", "ttl": self.ttl})]


@dataclass(frozen=True)
class Heads:
    heads: dict[str, int]

    def encode(self) -> bytes:
        return dagcbor.encode({"op": "heads", "heads": self.heads})


def _map(data: bytes, limit: int, op: str, keys: set[str]) -> dict[str, Any]:
    record = dagcbor.decode_message(data, limit, "a stream message", StreamProtocolError)
    if record.get("op") != op or set(record) != keys | {"op"}:
        raise StreamProtocolError(f"a {op} message is a map of exactly {sorted(keys | {'op'})}")
    return record


def _count(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise StreamProtocolError(f"{name} must be an integer in [{low}, {high}]")
    return value


def _stream(value: Any) -> str:
    if not isinstance(value, str) or not is_stream_id(value):
        raise StreamProtocolError("stream must be a stream id")
    return value


def parse_since(data: bytes) -> Since:
    record = _map(data, MAX_REQUEST, "since", {"stream", "after", "limit"})
    return Since(
        _stream(record["stream"]),
        _count(record["after"], "after", 0, MAX_SEQ),
        _count(record["limit"], "limit", 1, MAX_BATCH),
    )


def parse_request(data: bytes) -> Since | Watch | Heads:
    """Any request a holder or a watching replica serves, by its ``op`` (each op has its own size bound)."""
    record = dagcbor.decode_message(data, MAX_NOTICE, "a stream message", StreamProtocolError)
    op = record.get("op")
    if op == "heads":
        if set(record) != {"op", "heads"}:
            raise StreamProtocolError("a heads message is a map of exactly ['heads', 'op']")
        heads = record["heads"]
        if not isinstance(heads, dict) or not 1 <= len(heads) <= MAX_NOTICE_HEADS:
            raise StreamProtocolError(f"heads must be a map of 1 to {MAX_NOTICE_HEADS} stream ids to seqs")
        return Heads({_stream(stream): _count(seq, "seq", 1, MAX_SEQ) for stream, seq in heads.items()})
    if len(data) > MAX_REQUEST:
        raise StreamProtocolError(f"a {op} message is at most {MAX_REQUEST} bytes (got {len(data)})")
    if op == "watch":
        if set(record) != {"op", "stream"}:
            raise StreamProtocolError("a watch message is a map of exactly ['op', 'stream']")
        return Watch(_stream(record["stream"]))
    return parse_since(data)


def parse_watching(frames: list[bytes]) -> Watching | None:
    """The holder's answer to a watch; None: an empty reply (a holder that predates watches)."""
    if not frames:
        return None
    if len(frames) != 1:
        raise StreamProtocolError("a watching answer is one frame")
    return Watching(_count(_map(frames[0], MAX_REQUEST, "watching", {"ttl"})["ttl"], "ttl", 0, MAX_TTL))


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
