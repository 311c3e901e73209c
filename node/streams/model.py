"""What a node knows of one stream, and the chain rule every new entry must pass.

The rule is the same for an append at the origin and for entries a replica pulls from a
peer: the next entry has seq = head + 1 and names the head's CID as ``prev``. Anything
else is refused with a typed :class:`StreamRefused` (the stream unchanged), except a
*fork*: a second, differently signed entry at a seq this node already holds (or one that
links to a predecessor other than the one held). That proves the writer signed two
histories; both entries are kept as evidence and the stream is marked forked, so nothing
more is built on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from node.errors import NodeError
from storage.cid import CID
from storage.streamentry import Entry


class Refusal(enum.Enum):
    """Why an entry was refused; the API answers 400 for the first group, 409 for the second."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    OVERSIZE = "oversize"
    WRONG_STREAM = "wrong_stream"
    GAP = "gap"
    REPLAY = "replay"
    FORK = "fork"
    FORKED = "forked"
    NOT_FOUND = "not_found"
    OUTSIDE_REGIONS = "outside_regions"  # the stream's writer-signed policy excludes the node's region

    @property
    def status(self) -> int:
        if self is Refusal.NOT_FOUND:
            return 404
        if self is Refusal.OUTSIDE_REGIONS:
            return 403
        return 409 if self in (Refusal.GAP, Refusal.REPLAY, Refusal.FORK, Refusal.FORKED) else 400


class StreamRefused(NodeError):
    """An entry (or a batch) was refused; nothing of it was stored."""

    def __init__(self, refusal: Refusal, detail: str, index: int = 0) -> None:
        super().__init__(detail)
        self.refusal, self.detail, self.index = refusal, detail, index


@dataclass(frozen=True)
class Retention:
    """Keep the last ``entries`` entries and those younger than ``seconds`` (0 = no bound)."""

    entries: int = 0
    seconds: int = 0

    def record(self) -> dict[str, int]:
        return {"entries": self.entries, "seconds": self.seconds}


MAX_RETENTION = 1 << 40


@dataclass(frozen=True)
class StreamInfo:
    stream: str
    writer: str
    name: str
    head_seq: int
    head_cid: CID | None
    first_seq: int  # the oldest entry still held (retention drops older ones)
    forked: bool
    origin: bool  # appended here (True) or replicated from a peer
    source: str  # the peer a replica pulls from ("" at the origin)
    retention: Retention
    updated: float
    snapshot: CID | None = None  # the newest snapshot of entries retention compacted (node.streams.compaction)
    snapshot_seq: int = 0  # ... which holds entries up to this seq

    def record(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "writer": self.writer,
            "name": self.name,
            "head_seq": self.head_seq,
            "head_cid": self.head_cid,
            "first_seq": self.first_seq,
            "forked": self.forked,
            "origin": self.origin,
            "source": self.source,
            "retention": self.retention.record(),
            "updated": self.updated,
            "snapshot": self.snapshot,
            "snapshot_seq": self.snapshot_seq,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StreamInfo:
        retention = record["retention"]
        return cls(
            stream=record["stream"],
            writer=record["writer"],
            name=record["name"],
            head_seq=record["head_seq"],
            head_cid=record["head_cid"],
            first_seq=record["first_seq"],
            forked=record["forked"],
            origin=record["origin"],
            source=record["source"],
            retention=Retention(retention["entries"], retention["seconds"]),
            updated=record["updated"],
            snapshot=record.get("snapshot"),
            snapshot_seq=record.get("snapshot_seq", 0),
        )

    def json(self) -> dict[str, Any]:
        view = self.record()
        view["head_cid"] = str(self.head_cid) if self.head_cid else None
        view["snapshot"] = str(self.snapshot) if self.snapshot else None
        return view


def check_next(head_seq: int, head_cid: CID | None, forked: bool, entry: Entry, held: CID | None) -> None:
    """Where ``entry`` fits after the head; ``held`` is the CID this node holds at ``entry.seq``
    (None when it holds none there). Raises StreamRefused; a FORK refusal means evidence."""
    if forked:
        raise StreamRefused(Refusal.FORKED, f"stream {entry.stream} is forked: its writer signed two histories")
    if entry.seq <= head_seq:
        if held is not None and held != entry.cid:
            raise StreamRefused(Refusal.FORK, f"a second entry signed at seq {entry.seq} of {entry.stream}")
        raise StreamRefused(Refusal.REPLAY, f"seq {entry.seq} is already in the stream (head is {head_seq})")
    if entry.seq > head_seq + 1:
        missing = f"seq {entry.seq} follows head {head_seq}: entries from {head_seq + 1} are missing"
        raise StreamRefused(Refusal.GAP, missing)
    if entry.prev != head_cid:
        raise StreamRefused(Refusal.FORK, f"seq {entry.seq} links to {entry.prev}, not to the head {head_cid}")
