"""CAR v1 archives: export a DAG to one file, import one with every block verified.

Format: ``varint(len) dag-cbor{roots: [CID], version: 1}`` then sections of
``varint(len) CID block``. A CAR is untrusted input: lengths are bounded, every CID
must match its block, and a truncated or malformed file is refused with the byte
offset of the problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from storage import dagcbor
from storage.blockstore import MAX_BLOCK_SIZE, BlockStore
from storage.cid import CID
from storage.errors import BlockVerificationError, CarFormatError, CodecError, InvalidCIDError
from storage.varint import decode_uvarint, encode_uvarint

MAX_HEADER_SIZE = 1 << 20
_MAX_VARINT = 10


@dataclass(frozen=True, slots=True)
class CarImportResult:
    roots: list[CID]
    blocks: int
    added_blocks: int
    pinned: list[CID]


def car_header(roots: list[CID]) -> bytes:
    """The length-prefixed CAR v1 header naming ``roots``."""
    header = dagcbor.encode({"roots": list(roots), "version": 1})
    return encode_uvarint(len(header)) + header


def car_section(cid: CID, data: bytes) -> bytes:
    """One length-prefixed ``CID block`` section."""
    key = bytes(cid)
    return encode_uvarint(len(key) + len(data)) + key + data


def export_car(store: BlockStore, root: CID, out: BinaryIO) -> int:
    """Write the DAG under ``root`` as a CAR v1 stream (depth-first); returns blocks written."""
    out.write(car_header([root]))
    count = 0
    for cid, data in store.walk(root, verify=True):
        out.write(car_section(cid, data))
        count += 1
    return count


def read_car(stream: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Parse the header now and return the roots plus a lazy iterator of verified blocks."""
    reader = _Reader(stream)
    header_len = reader.varint("header length", eof_ok=True)
    if header_len is None:
        raise CarFormatError("empty file: not a CAR archive")
    if header_len == 0 or header_len > MAX_HEADER_SIZE:
        raise CarFormatError(f"CAR header length {header_len} is not plausible (corrupt or not a CAR file)")
    raw_header = reader.exact(header_len, "header")
    try:
        header = dagcbor.decode(raw_header)
    except CodecError as exc:
        raise CarFormatError(f"CAR header is not valid DAG-CBOR: {exc}") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise CarFormatError("not a CAR v1 file (header version is not 1)")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise CarFormatError("CAR header roots must be a list of CIDs")
    return list(roots), _sections(reader)


def import_car(store: BlockStore, stream: BinaryIO, *, pin_roots: bool = True) -> CarImportResult:
    """Import every block of a CAR (each verified) and pin its roots when complete.

    A bad block aborts the import with an error naming it; roots are pinned only after
    the whole archive has been read, so a bad archive never leaves a pin behind.
    """
    roots, sections = read_car(stream)
    blocks = 0
    with store.import_session():
        with store.batch(trusted=True) as batch:  # _sections has verified each block
            for cid, data in sections:
                batch.put_block(cid, data)
                blocks += 1
        pinned = []
        if pin_roots:
            for root in roots:
                if not store.missing_blocks(root):
                    store.pin(root, "car import")
                    pinned.append(root)
    return CarImportResult(roots, blocks, batch.added_blocks, pinned)


def _sections(reader: _Reader) -> Iterator[tuple[CID, bytes]]:
    index = 0
    while True:
        start = reader.offset
        length = reader.varint("section length", eof_ok=True)
        if length is None:
            return
        if length == 0 or length > MAX_BLOCK_SIZE + 128:
            raise CarFormatError(f"section {index} at byte {start} has implausible length {length}")
        body = reader.exact(length, f"section {index}")
        cid_len = _cid_length(body, index, start)
        try:
            cid = CID(body[:cid_len])
        except InvalidCIDError as exc:
            raise CarFormatError(f"section {index} at byte {start}: {exc}") from None
        data = body[cid_len:]
        if not cid.matches(data):
            raise BlockVerificationError(cid, f"CAR section {index} at byte {start} does not hash to its CID")
        yield cid, data
        index += 1


def _cid_length(body: bytes, index: int, start: int) -> int:
    """Length of the CID at the front of a section (CIDv0 is a bare 34-byte multihash)."""
    if body[:2] == b"\x12\x20":
        return 34
    try:
        pos = 0
        for _ in range(3):  # version, codec, multihash code
            _, pos = decode_uvarint(body, pos)
        digest_len, pos = decode_uvarint(body, pos)
    except CodecError:
        raise CarFormatError(f"section {index} at byte {start}: malformed CID") from None
    if pos + digest_len > len(body):
        raise CarFormatError(f"section {index} at byte {start}: CID runs past the end of the section")
    return pos + digest_len


class _Reader:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.offset = 0

    def exact(self, size: int, what: str) -> bytes:
        data = self._stream.read(size)
        while len(data) < size:
            more = self._stream.read(size - len(data))
            if not more:
                raise CarFormatError(
                    f"CAR file truncated in the {what} at byte {self.offset + len(data)} "
                    f"({size - len(data)} bytes missing)"
                )
            data += more
        self.offset += size
        return data

    def varint(self, what: str, eof_ok: bool = False) -> int | None:
        value = shift = 0
        for count in range(_MAX_VARINT):
            byte = self._stream.read(1)
            if not byte:
                if count == 0 and eof_ok:
                    return None
                raise CarFormatError(f"CAR file truncated in the {what} at byte {self.offset}")
            self.offset += 1
            value |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return value
            shift += 7
        raise CarFormatError(f"CAR {what} at byte {self.offset} is not a valid varint")
