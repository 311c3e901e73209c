"""The receiver's check of a bulk CAR stream: every block in the order the sender must use.

The provider sends the DAG under one root depth-first, pre-order, each distinct block once
(the trustless gateway's ``order=dfs&dups=n``). The receiver walks the same DAG as the blocks
arrive, so it knows which CID must come next: a section naming any other CID (out of order,
unasked, or a block skipped) is refused at once, a block that does not hash to its CID is
refused, and a stream that ends while the walk still expects blocks is refused as truncated.
Each block is hashed exactly once, here, in a thread (:meth:`CarVerifier.feed` is called off
the event loop); the :class:`VerifiedBlock` it returns goes to LMDB without another hash.
"""

from __future__ import annotations

from node.errors import NetworkError
from node.exchange import SourceRefused
from storage import dagcbor
from storage.blockstore import MAX_BLOCK_SIZE, VerifiedBlock, verify_block
from storage.cid import CID
from storage.dag import has_links, links_of
from storage.errors import BlockVerificationError, CodecError, StorageError
from storage.varint import decode_uvarint

MAX_HEADER = 4096  # a bulk CAR names one root: its header is a few dozen bytes
MAX_SECTION = MAX_BLOCK_SIZE + 128


class BadCar(SourceRefused):
    """The stream broke the bulk CAR rules (order, hash, header): the provider is dropped for this fetch."""


class TruncatedCar(NetworkError):
    """The stream ended before the DAG did (a provider that stopped, or a broken connection):
    the fetch goes on over ``/mycel/blocks`` from the blocks already stored."""


class CarVerifier:
    """Feed the stream's bytes in any chunking; get back the verified blocks, in order."""

    def __init__(self, root: CID) -> None:
        self.root = root
        self._parts: list[bytes] = []  # bytes received and not yet parsed
        self._pending = 0
        self._need = 0  # how many pending bytes the next step needs
        self._header_done = False
        self._failed: BadCar | None = None
        self._expected: list[CID] = [root]  # a stack: the next CID of the walk is on top
        self._seen: set[CID] = set()
        self.blocks = 0
        self.bytes = 0

    def feed(self, chunk: bytes) -> list[VerifiedBlock]:
        """Check every whole section ``chunk`` completes; raises :class:`BadCar`.

        Bytes wait in a list until the next section can be whole, so a sender dribbling
        tiny chunks costs linear time, not a copy of the buffer per chunk.
        """
        if self._failed is not None:
            raise self._failed
        self._parts.append(chunk)
        self._pending += len(chunk)
        if self._pending < self._need:
            return []
        data = b"".join(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts.clear()
        pos = 0
        out: list[VerifiedBlock] = []
        if not self._header_done:
            pos = self._header(data)
            if pos < 0:
                self._keep(data, 0, -pos)
                return out
        view = memoryview(data)  # blocks are copied once, out of the view
        while True:
            start, end = _section_at(data, pos)
            if end > len(data):
                break
            try:
                out.append(self._block(view[start:end]))
            except BadCar as exc:
                if not out:
                    raise
                self._failed = exc  # the blocks before it are good: hand them over, refuse on the next call
                return out
            pos = end
        self._keep(data, pos, end - pos)
        return out

    def _keep(self, data: bytes, pos: int, need: int) -> None:
        rest = data[pos:] if pos else data
        if rest:
            self._parts.append(rest)
        self._pending = len(rest)
        self._need = need

    def finish(self) -> None:
        """The stream ended: raise :class:`TruncatedCar` unless the whole DAG came."""
        if self._failed is not None:
            raise self._failed
        if not self._header_done:
            raise TruncatedCar("the stream ended inside the CAR header")
        if self._pending:
            raise TruncatedCar(f"the stream ended inside a section ({self._pending} bytes of it)")
        if self._next_expected() is not None:
            raise TruncatedCar(f"the stream ended after {self.blocks} blocks with the DAG incomplete")

    def _header(self, data: bytes) -> int:
        """The header's end, or minus the bytes needed before it can be read."""
        try:
            length, pos = decode_uvarint(data, 0)
        except (StorageError, IndexError):
            if len(data) < 10:
                return -(len(data) + 1)
            raise BadCar("the CAR header length is not a varint") from None
        if not 0 < length <= MAX_HEADER:
            raise BadCar(f"a CAR header of {length} bytes is not a bulk CAR header")
        if len(data) < pos + length:
            return -(pos + length)
        try:
            header = dagcbor.decode(data[pos : pos + length])
        except CodecError as exc:
            raise BadCar(f"the CAR header is not DAG-CBOR: {exc}") from None
        if not isinstance(header, dict) or header.get("version") != 1 or header.get("roots") != [self.root]:
            raise BadCar(f"the CAR header does not name exactly the root {self.root}")
        self._header_done = True
        return pos + length

    def _next_expected(self) -> CID | None:
        while self._expected:
            cid = self._expected.pop()
            if cid not in self._seen:
                return cid
        return None

    def _block(self, body: memoryview) -> VerifiedBlock:
        expected = self._next_expected()
        if expected is None:
            raise BadCar(f"a section after the last block of the DAG ({self.blocks} blocks)")
        key = bytes(expected)
        if body[: len(key)] != key:
            raise BadCar(f"block {self.blocks} of the stream is not {expected}, the next one of the DAG")
        try:
            block = verify_block(expected, bytes(body[len(key) :]))  # the one copy out of the stream
        except BlockVerificationError:
            raise BadCar(f"block {expected} does not hash to its CID") from None
        except StorageError as exc:
            raise BadCar(str(exc)) from None
        self._seen.add(expected)
        if has_links(expected):
            try:
                links = links_of(expected, block.data)
            except (CodecError, StorageError) as exc:
                raise BadCar(f"block {expected} does not decode: {exc}") from None
            self._expected.extend(reversed(links))
        self.blocks += 1
        self.bytes += len(block.data)
        return block


def _section_at(data: bytes, pos: int) -> tuple[int, int]:
    """(start, end) of the section body at ``pos``; an ``end`` past the data means: wait for more
    (``end`` is then how far the data must reach, at least one byte more than now)."""
    if pos >= len(data):
        return pos, pos + 1
    try:
        length, start = decode_uvarint(data, pos)
    except (StorageError, IndexError):
        if len(data) - pos < 10:
            return pos, len(data) + 1  # the varint itself is cut
        raise BadCar("a CAR section length is not a varint") from None
    if not 0 < length <= MAX_SECTION:
        raise BadCar(f"a CAR section of {length} bytes is over the block limit")
    return start, start + length
