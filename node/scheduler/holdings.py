"""What a node holds, small enough to ride in its signed announcement (field ``held``).

Placement pulls compute to the data, so the requester must know who holds a job's inputs.
Asking every peer per job costs a stream per peer per input; instead each node announces
its largest pinned roots with their sizes (exact, up to MAX_ROOTS) and, once it has more
pins than that, a Bloom filter over all of them. A listed root is taken at its word (the
same trust as a ``have`` answer: it only ranks); a Bloom hit is only a *maybe* and costs
one ``have`` round trip to that peer, so a false positive never changes a verdict. Private
roots are never summarized: their holders are found by the policy, not by gossip.

The filter: BLOOM_BITS bits, BLOOM_HASHES hashes, indices by double hashing of a SHA-256
of the CID's bytes. At 1,000 roots its false-positive rate is about 2 %, at 500 about 0.1 %.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.blockstore import Pin
from storage.cid import CID

MAX_ROOTS = 32
BLOOM_BITS = 8192
BLOOM_HASHES = 7
MAX_SIZE = 1 << 62  # a DAG size a peer may state (an int of the announcement schema)


def _indices(cid: CID, bits: int, hashes: int) -> list[int]:
    digest = hashlib.sha256(bytes(cid)).digest()
    first, second = int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:16], "big") | 1
    return [(first + i * second) % bits for i in range(hashes)]


@dataclass(frozen=True)
class Bloom:
    bits: bytes
    hashes: int = BLOOM_HASHES

    @classmethod
    def of(cls, cids: Iterable[CID], size_bits: int = BLOOM_BITS, hashes: int = BLOOM_HASHES) -> Bloom:
        array = bytearray(size_bits // 8)
        for cid in cids:
            for index in _indices(cid, size_bits, hashes):
                array[index // 8] |= 1 << (index % 8)
        return cls(bytes(array), hashes)

    def may_hold(self, cid: CID) -> bool:
        size_bits = len(self.bits) * 8
        if not size_bits:
            return False
        return all(self.bits[i // 8] & (1 << (i % 8)) for i in _indices(cid, size_bits, self.hashes))


@dataclass(frozen=True)
class Holdings:
    """One node's summary: roots it holds whole (with their sizes), and a filter of the rest."""

    roots: Mapping[CID, int] = field(default_factory=dict)
    bloom: Bloom | None = None

    def size_of(self, cid: CID) -> int | None:
        """The stated size when ``cid`` is listed (an exact claim), else None."""
        return self.roots.get(cid)

    def may_hold(self, cid: CID) -> bool:
        """A Bloom hit for an unlisted root: confirm it before counting on it."""
        return cid not in self.roots and self.bloom is not None and self.bloom.may_hold(cid)

    def to_announcement(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"roots": [[cid, size] for cid, size in self.roots.items()]}
        if self.bloom is not None:
            fields["bloom"] = self.bloom.bits
            fields["hashes"] = self.bloom.hashes
        return fields


NOTHING = Holdings()


def summarize(pins: Iterable[Pin], is_private: Callable[[CID], bool]) -> Holdings:
    """This node's summary from its pins (a disk read per pin for privacy: call off the loop).

    The largest roots of known size are listed; with more pins than MAX_ROOTS, every root
    also goes in the filter, so none is left out of the summary."""
    public = [pin for pin in pins if not is_private(pin.cid)]
    sized = sorted((pin for pin in public if pin.size is not None), key=lambda p: (-(p.size or 0), str(p.cid)))
    roots = {pin.cid: int(pin.size or 0) for pin in sized[:MAX_ROOTS]}
    if len(public) <= len(roots):
        return Holdings(roots)
    return Holdings(roots, Bloom.of(pin.cid for pin in public))


def from_announcement(announcement: Mapping[str, Any]) -> Holdings:
    """The summary of a verified announcement (announce.validate checked its shape)."""
    held = announcement.get("held")
    if not isinstance(held, Mapping):
        return NOTHING
    roots = {item[0]: item[1] for item in held.get("roots", ()) if isinstance(item[0], CID)}
    bits = held.get("bloom")
    bloom = Bloom(bits, int(held.get("hashes", BLOOM_HASHES))) if isinstance(bits, bytes) else None
    return Holdings(roots, bloom)


class HoldingsCache:
    """This node's summary, rebuilt only when what it is made of may have changed.

    Summarizing scans every pin and reads the privacy index once per pin; announcements go
    out on every change of load or peers, so rescanning for each would cost a store walk per
    job on a busy node. ``version`` names the state the summary depends on (the store's pin
    writes, the privacy registry's locks); a summary is rebuilt when it moved, or when the
    caller asks for a ``fresh`` one (the heartbeat does, to catch pins another process wrote).
    Call off the event loop: a rebuild reads the disk.
    """

    def __init__(self, build: Callable[[], Holdings], version: Callable[[], object]) -> None:
        self._build = build
        self._version = version
        self._lock = threading.Lock()  # two threads rebuilding at once would do the scan twice
        self._held: Holdings | None = None
        self._built_at: object = None
        self.builds = 0  # rebuilds so far (tests and the bench read it)

    def current(self, fresh: bool = False) -> Holdings:
        with self._lock:
            version = self._version()  # read first: a change during the scan rebuilds next time
            if fresh or self._held is None or version != self._built_at:
                self._held = self._build()
                self._built_at = version
                self.builds += 1
            return self._held
