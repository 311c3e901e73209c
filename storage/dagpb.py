"""DAG-PB, the protobuf codec UnixFS files and directories are built on.

Written by hand rather than with generated protobuf code: the format is two tiny
messages, the spec demands a stricter decoder than protobuf gives (field order fixed,
no unknown fields, no duplicates) and the importer encodes one node per 174 blocks.
Encoding follows the spec's canonical form: links first, then data; link fields in
the order Hash, Name, Tsize.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.cid import CID, DAG_PB
from storage.errors import CodecError, InvalidCIDError
from storage.varint import encode_uvarint

_LINKS_TAG = b"\x12"  # field 2, length-delimited
_DATA_TAG = b"\x0a"  # field 1, length-delimited
_HASH_TAG = b"\x0a"
_NAME_TAG = b"\x12"
_TSIZE_TAG = b"\x18"  # field 3, varint


@dataclass(frozen=True, slots=True)
class PBLink:
    hash: CID
    name: str | None = None
    tsize: int | None = None

    def encode(self) -> bytes:
        cid = bytes(self.hash)
        out = [_HASH_TAG, encode_uvarint(len(cid)), cid]
        if self.name is not None:
            name = self.name.encode("utf-8")
            out += [_NAME_TAG, encode_uvarint(len(name)), name]
        if self.tsize is not None:
            out += [_TSIZE_TAG, encode_uvarint(self.tsize)]
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class PBNode:
    links: list[PBLink] = field(default_factory=list)
    data: bytes | None = None

    def encode(self) -> bytes:
        out = []
        for link in self.links:
            encoded = link.encode()
            out += [_LINKS_TAG, encode_uvarint(len(encoded)), encoded]
        if self.data is not None:
            out += [_DATA_TAG, encode_uvarint(len(self.data)), self.data]
        return b"".join(out)

    def encode_with_cid(self) -> tuple[CID, bytes]:
        block = self.encode()
        return CID.for_block(block, DAG_PB), block


def encode(node: PBNode) -> bytes:
    return node.encode()


def decode(block: bytes | memoryview) -> PBNode:
    """Strict decode per the DAG-PB spec; raises CodecError naming the problem."""
    buf = bytes(block)
    links: list[PBLink] = []
    data: bytes | None = None
    pos = 0
    while pos < len(buf):
        field_no, wire, pos = read_key(buf, pos)
        if wire != 2:
            raise CodecError(f"dag-pb: field {field_no} has wire type {wire}, expected bytes")
        payload, pos = read_length_delimited(buf, pos)
        if field_no == 2:
            if data is not None:
                raise CodecError("dag-pb: Links after Data (duplicate or out-of-order field)")
            links.append(_decode_link(payload))
        elif field_no == 1:
            if data is not None:
                raise CodecError("dag-pb: duplicate Data field")
            data = payload
        else:
            raise CodecError(f"dag-pb: unknown field {field_no} in PBNode")
    return PBNode(links=links, data=data)


def from_ipld(value: Any) -> PBNode:
    """Build a node from its IPLD data-model form ``{"Data": bytes, "Links": [...]}``."""
    if not isinstance(value, Mapping):
        raise CodecError("Invalid DAG-PB form (must be a map)")
    extra = set(value) - {"Data", "Links"}
    if extra:
        raise CodecError(f"Invalid DAG-PB form (extraneous properties: {sorted(extra)})")
    if "Links" not in value or not isinstance(value["Links"], list):
        raise CodecError("Invalid DAG-PB form (Links must be a list)")
    data = value.get("Data")
    if "Data" in value and not isinstance(data, bytes):
        raise CodecError("Invalid DAG-PB form (Data must be bytes)")
    links = [_link_from_ipld(item) for item in value["Links"]]
    names = [link.name or "" for link in links]
    if [n.encode() for n in names] != sorted(n.encode() for n in names):
        raise CodecError("Invalid DAG-PB form (links must be sorted by Name bytes)")
    return PBNode(links=links, data=data)


def _link_from_ipld(item: Any) -> PBLink:
    if not isinstance(item, Mapping):
        raise CodecError("Invalid DAG-PB form (bad link)")
    extra = set(item) - {"Hash", "Name", "Tsize"}
    if extra:
        raise CodecError(f"Invalid DAG-PB form (extraneous properties on link: {sorted(extra)})")
    if "Hash" not in item:
        raise CodecError("Invalid DAG-PB form (link must have a Hash)")
    if not isinstance(item["Hash"], CID):
        raise CodecError("Invalid DAG-PB form (link Hash must be a CID)")
    name = item.get("Name")
    if "Name" in item and not isinstance(name, str):
        raise CodecError("Invalid DAG-PB form (link Name must be a string)")
    tsize = item.get("Tsize")
    if "Tsize" in item and (not isinstance(tsize, int) or isinstance(tsize, bool)):
        raise CodecError("Invalid DAG-PB form (link Tsize must be an integer)")
    if tsize is not None and not 0 <= tsize < 2**63:
        raise CodecError("Invalid DAG-PB form (link Tsize must be a non-negative 63-bit integer)")
    return PBLink(hash=item["Hash"], name=name, tsize=tsize)


def _decode_link(buf: bytes) -> PBLink:
    cid: CID | None = None
    name: str | None = None
    tsize: int | None = None
    last_field = 0
    pos = 0
    while pos < len(buf):
        field_no, wire, pos = read_key(buf, pos)
        if field_no <= last_field:
            raise CodecError(f"dag-pb: link field {field_no} duplicated or out of order")
        last_field = field_no
        if field_no == 1:
            if wire != 2:
                raise CodecError("dag-pb: link Hash has the wrong wire type")
            raw, pos = read_length_delimited(buf, pos)
            try:
                cid = CID(raw)
            except InvalidCIDError as exc:
                raise CodecError(f"Invalid Hash field found in link, expected CID ({exc})") from None
        elif field_no == 2:
            if wire != 2:
                raise CodecError("dag-pb: link Name has the wrong wire type")
            raw, pos = read_length_delimited(buf, pos)
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CodecError("dag-pb: link Name is not valid UTF-8") from None
        elif field_no == 3:
            if wire != 0:
                raise CodecError("dag-pb: link Tsize has the wrong wire type")
            tsize, pos = read_varint(buf, pos)
        else:
            raise CodecError(f"dag-pb: unknown field {field_no} in PBLink")
    if cid is None:
        raise CodecError("Invalid Hash field found in link, expected CID (link has no Hash)")
    return PBLink(hash=cid, name=name, tsize=tsize)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    # protobuf varints may be non-minimal in the wild; dag-pb does not forbid it, so
    # decode leniently here rather than with the multiformats-strict decoder.
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise CodecError("dag-pb: truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 2**64:
                raise CodecError("dag-pb: varint overflows 64 bits")
            return value, pos
        shift += 7
        if shift > 63:
            raise CodecError("dag-pb: varint too long")


def read_key(buf: bytes, pos: int) -> tuple[int, int, int]:
    key, pos = read_varint(buf, pos)
    return key >> 3, key & 7, pos


def read_length_delimited(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise CodecError("dag-pb: length-delimited field runs past the end of the block")
    return buf[pos:end], end


__all__ = ["PBLink", "PBNode", "decode", "encode", "from_ipld"]
