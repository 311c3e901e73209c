"""The UnixFS ``Data`` protobuf carried in a dag-pb node's Data field."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from storage.dagpb import read_key, read_length_delimited, read_varint
from storage.errors import CodecError, UnixFSError
from storage.varint import encode_uvarint


class NodeType(IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class UnixFSData:
    type: NodeType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default_factory=tuple)

    def encode(self) -> bytes:
        out = [b"\x08", encode_uvarint(int(self.type))]
        if self.data:
            out += [b"\x12", encode_uvarint(len(self.data)), self.data]
        if self.filesize is not None:
            out += [b"\x18", encode_uvarint(self.filesize)]
        for size in self.blocksizes:
            out += [b"\x20", encode_uvarint(size)]
        return b"".join(out)


DIRECTORY_DATA = UnixFSData(NodeType.DIRECTORY).encode()


def decode(buf: bytes) -> UnixFSData:
    node_type: int | None = None
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    pos = 0
    try:
        while pos < len(buf):
            field_no, wire, pos = read_key(buf, pos)
            if field_no == 1 and wire == 0:
                node_type, pos = read_varint(buf, pos)
            elif field_no == 2 and wire == 2:
                data, pos = read_length_delimited(buf, pos)
            elif field_no == 3 and wire == 0:
                filesize, pos = read_varint(buf, pos)
            elif field_no == 4 and wire == 0:
                size, pos = read_varint(buf, pos)
                blocksizes.append(size)
            elif field_no == 4 and wire == 2:  # packed form, accepted on read
                packed, pos = read_length_delimited(buf, pos)
                inner = 0
                while inner < len(packed):
                    size, inner = read_varint(packed, inner)
                    blocksizes.append(size)
            elif wire == 0:  # hashType, fanout, mode: read and ignore
                _, pos = read_varint(buf, pos)
            elif wire == 2:  # mtime and future fields
                _, pos = read_length_delimited(buf, pos)
            else:
                raise UnixFSError(f"UnixFS: unexpected wire type {wire} for field {field_no}")
    except CodecError as exc:
        raise UnixFSError(f"malformed UnixFS data: {exc}") from None
    if node_type is None:
        raise UnixFSError("malformed UnixFS data: no Type field")
    try:
        kind = NodeType(node_type)
    except ValueError:
        raise UnixFSError(f"unknown UnixFS node type {node_type}") from None
    return UnixFSData(kind, data, filesize, tuple(blocksizes))
