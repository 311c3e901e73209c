"""The Bitswap wire message, encoded and decoded by hand (proto3 rules), with hard bounds.

The schema (``message.proto`` of the Bitswap spec, 1.0.0 to 1.2.0)::

    Message { Wantlist wantlist = 1; repeated bytes blocks = 2;  // 1.0.0
              repeated Block payload = 3;                       // 1.1.0+
              repeated BlockPresence blockPresences = 4;        // 1.2.0
              int32 pendingBytes = 5; }
    Wantlist { repeated Entry entries = 1; bool full = 2; }
    Entry { bytes block = 1 (a CID); int32 priority = 2; bool cancel = 3;
            WantType wantType = 4 (Block 0, Have 1); bool sendDontHave = 5; }
    Block { bytes prefix = 1; bytes data = 2; }
    BlockPresence { bytes cid = 1; BlockPresenceType type = 2 (Have 0, DontHave 1); }

Why by hand: the schema is five small messages, and a hand decoder can refuse hostile input
as it reads (a size cap before anything is parsed, an entry cap, every CID parsed and
validated, wire types checked) instead of materialising whatever a generated parser accepts.
Unknown fields are skipped, as proto3 requires, so newer peers stay readable.

Every failure is a :class:`BitswapMessageError`; nothing else escapes :func:`decode`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum

from storage.cid import CID, DAG_PB, SHA2_256, SHA2_512
from storage.errors import InvalidCIDError
from storage.varint import encode_uvarint

MAX_MESSAGE = 4 << 20  # what Helia and boxo accept per message; a bigger one is refused unread
MAX_ENTRIES = 8192  # wantlist entries in one message (a full wantlist from boxo stays well below)
MAX_BLOCKS = 4096  # blocks + payload + presences in one message
MAX_CID = 128  # bytes: a sha2-512 CIDv1 with a long codec varint is ~70

_HASHERS = {SHA2_256: hashlib.sha256, SHA2_512: hashlib.sha512}  # the hashes this node verifies
_VARINT = 0
_I64 = 1
_LEN = 2
_I32 = 5


class BitswapMessageError(ValueError):
    """A Bitswap message that is malformed or over a bound; the sender is not to be trusted."""


class WantType(IntEnum):
    BLOCK = 0
    HAVE = 1


class Presence(IntEnum):
    HAVE = 0
    DONT_HAVE = 1


@dataclass(frozen=True)
class WantEntry:
    cid: CID
    priority: int = 0  # the proto3 default, so a decoded entry equals the one encoded
    cancel: bool = False
    want_type: WantType = WantType.BLOCK
    send_dont_have: bool = False


@dataclass(frozen=True)
class BlockPresence:
    cid: CID
    type: Presence


@dataclass(frozen=True)
class Payload:
    """A block as 1.1.0+ sends it: the CID's prefix (version, codec, hash code and length) and the bytes."""

    prefix: bytes
    data: bytes


@dataclass
class Message:
    entries: list[WantEntry] = field(default_factory=list)
    full: bool = False
    blocks: list[bytes] = field(default_factory=list)  # 1.0.0: CIDv0 blocks, bytes only
    payload: list[Payload] = field(default_factory=list)
    presences: list[BlockPresence] = field(default_factory=list)
    pending_bytes: int = 0


# -- low-level reading ----------------------------------------------------------------
def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A protobuf varint (up to 10 bytes, 64 bits) at ``pos``."""
    value = shift = 0
    while True:
        if pos >= end:
            raise BitswapMessageError("message ends inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise BitswapMessageError("varint longer than 10 bytes")
    if value >> 64:
        raise BitswapMessageError("varint over 64 bits")
    return value, pos


def _int32(value: int) -> int:
    """A proto int32 from its varint (negative numbers arrive as 64-bit two's complement)."""
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if not -(1 << 31) <= value < 1 << 31:
        raise BitswapMessageError(f"int32 field out of range: {value}")
    return value


def _fields(buf: bytes, start: int, end: int) -> list[tuple[int, int, int | tuple[int, int]]]:
    """(field number, wire type, varint value or (start, end) of a length-delimited field)."""
    out: list[tuple[int, int, int | tuple[int, int]]] = []
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise BitswapMessageError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            out.append((number, wire, value))
        elif wire == _LEN:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise BitswapMessageError("length-delimited field runs past its message")
            out.append((number, wire, (pos, pos + length)))
            pos += length
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        else:
            raise BitswapMessageError(f"unsupported wire type {wire} (groups are not part of this schema)")
        if pos > end:
            raise BitswapMessageError("fixed-width field runs past its message")
    return out


def _expect(wire: int, wanted: int, name: str) -> None:
    if wire != wanted:
        raise BitswapMessageError(f"field {name} has wire type {wire}, expected {wanted}")


def _cid(buf: bytes, span: tuple[int, int], name: str) -> CID:
    start, end = span
    if end - start > MAX_CID:
        raise BitswapMessageError(f"{name}: a {end - start}-byte CID is over the {MAX_CID}-byte limit")
    try:
        return CID(buf[start:end])
    except InvalidCIDError as exc:
        raise BitswapMessageError(f"{name}: {exc}") from None


def _bool(value: int) -> bool:
    return value != 0


def _enum(value: int, kind: type[WantType] | type[Presence], name: str) -> int:
    try:
        return int(kind(value))
    except ValueError:
        raise BitswapMessageError(f"{name}: unknown value {value}") from None


# -- decoding -------------------------------------------------------------------------
def decode(data: bytes) -> Message:
    """Parse one Bitswap message (the bytes of one length-prefixed frame)."""
    if len(data) > MAX_MESSAGE:
        raise BitswapMessageError(f"a {len(data)}-byte message is over the {MAX_MESSAGE}-byte limit")
    message = Message()
    counted = 0
    for number, wire, value in _fields(data, 0, len(data)):
        if number == 1:
            _expect(wire, _LEN, "wantlist")
            assert isinstance(value, tuple)
            _wantlist(data, value, message)
        elif number == 2:
            _expect(wire, _LEN, "blocks")
            assert isinstance(value, tuple)
            message.blocks.append(data[value[0] : value[1]])
            counted += 1
        elif number == 3:
            _expect(wire, _LEN, "payload")
            assert isinstance(value, tuple)
            message.payload.append(_payload(data, value))
            counted += 1
        elif number == 4:
            _expect(wire, _LEN, "blockPresences")
            assert isinstance(value, tuple)
            message.presences.append(_presence(data, value))
            counted += 1
        elif number == 5:
            _expect(wire, _VARINT, "pendingBytes")
            assert isinstance(value, int)
            message.pending_bytes = _int32(value)
        if counted > MAX_BLOCKS:
            raise BitswapMessageError(f"more than {MAX_BLOCKS} blocks and presences in one message")
    return message


def _wantlist(buf: bytes, span: tuple[int, int], message: Message) -> None:
    for number, wire, value in _fields(buf, *span):
        if number == 1:
            _expect(wire, _LEN, "wantlist.entries")
            assert isinstance(value, tuple)
            if len(message.entries) >= MAX_ENTRIES:
                raise BitswapMessageError(f"more than {MAX_ENTRIES} wantlist entries in one message")
            message.entries.append(_entry(buf, value))
        elif number == 2:
            _expect(wire, _VARINT, "wantlist.full")
            assert isinstance(value, int)
            message.full = _bool(value)


def _entry(buf: bytes, span: tuple[int, int]) -> WantEntry:
    cid: CID | None = None
    priority, cancel, want_type, send_dont_have = 0, False, WantType.BLOCK, False
    for number, wire, value in _fields(buf, *span):
        if number == 1:
            _expect(wire, _LEN, "entry.block")
            assert isinstance(value, tuple)
            cid = _cid(buf, value, "entry.block")
        elif number in (2, 3, 4, 5):
            _expect(wire, _VARINT, f"entry field {number}")
            assert isinstance(value, int)
            if number == 2:
                priority = _int32(value)
            elif number == 3:
                cancel = _bool(value)
            elif number == 4:
                want_type = WantType(_enum(value, WantType, "entry.wantType"))
            else:
                send_dont_have = _bool(value)
    if cid is None:
        raise BitswapMessageError("wantlist entry without a CID")
    return WantEntry(cid, priority, cancel, want_type, send_dont_have)


def _payload(buf: bytes, span: tuple[int, int]) -> Payload:
    prefix, data = b"", b""
    for number, wire, value in _fields(buf, *span):
        if number in (1, 2):
            _expect(wire, _LEN, f"payload field {number}")
            assert isinstance(value, tuple)
            if number == 1:
                prefix = buf[value[0] : value[1]]
            else:
                data = buf[value[0] : value[1]]
    if not prefix:
        raise BitswapMessageError("payload block without a CID prefix")
    return Payload(prefix, data)


def _presence(buf: bytes, span: tuple[int, int]) -> BlockPresence:
    cid: CID | None = None
    kind = Presence.HAVE
    for number, wire, value in _fields(buf, *span):
        if number == 1:
            _expect(wire, _LEN, "blockPresence.cid")
            assert isinstance(value, tuple)
            cid = _cid(buf, value, "blockPresence.cid")
        elif number == 2:
            _expect(wire, _VARINT, "blockPresence.type")
            assert isinstance(value, int)
            kind = Presence(_enum(value, Presence, "blockPresence.type"))
    if cid is None:
        raise BitswapMessageError("block presence without a CID")
    return BlockPresence(cid, kind)


# -- encoding -------------------------------------------------------------------------
def _key(number: int, wire: int) -> bytes:
    return encode_uvarint(number << 3 | wire)


def _len_field(number: int, data: bytes) -> bytes:
    return _key(number, _LEN) + encode_uvarint(len(data)) + data


def _varint_field(number: int, value: int) -> bytes:
    if value == 0:
        return b""  # proto3: defaults are not written
    return _key(number, _VARINT) + encode_uvarint(value & ((1 << 64) - 1))


def encode(message: Message) -> bytes:
    """The wire bytes of ``message`` (fields in number order, defaults left out)."""
    parts: list[bytes] = []
    if message.entries or message.full:
        entries = b"".join(_len_field(1, _encode_entry(entry)) for entry in message.entries)
        parts.append(_len_field(1, entries + _varint_field(2, int(message.full))))
    parts.extend(_len_field(2, block) for block in message.blocks)
    for item in message.payload:
        parts.append(_len_field(3, _len_field(1, item.prefix) + _len_field(2, item.data)))
    for presence in message.presences:
        parts.append(_len_field(4, _len_field(1, bytes(presence.cid)) + _varint_field(2, int(presence.type))))
    parts.append(_varint_field(5, message.pending_bytes))
    return b"".join(parts)


def _encode_entry(entry: WantEntry) -> bytes:
    return b"".join(
        (
            _len_field(1, bytes(entry.cid)),
            _varint_field(2, entry.priority),
            _varint_field(3, int(entry.cancel)),
            _varint_field(4, int(entry.want_type)),
            _varint_field(5, int(entry.send_dont_have)),
        )
    )


def payload_size(data_len: int, prefix_len: int) -> int:
    """Bytes a payload block of these sizes adds to an encoded message (to keep under MAX_MESSAGE)."""
    inner = 2 + len(encode_uvarint(prefix_len)) + prefix_len + len(encode_uvarint(data_len)) + data_len
    return 1 + len(encode_uvarint(inner)) + inner


# -- CID prefixes ---------------------------------------------------------------------
def prefix_of(cid: CID) -> bytes:
    """The 1.1.0 payload prefix of ``cid``: version, codec, multihash code and digest length."""
    digest = cid.digest
    return b"".join(map(encode_uvarint, (cid.version, cid.codec, cid.hash_code, len(digest))))


def prefix_fields(prefix: bytes) -> tuple[int, int, int, int]:
    """A payload prefix's (version, codec, multihash code, digest length), checked, with no hashing.

    Only hashes this node can verify are accepted (sha2-256, sha2-512), so a peer cannot make
    us take a block we did not hash.
    """
    try:
        fields: list[int] = []
        pos = 0
        for _ in range(4):
            value, pos = _varint(prefix, pos, len(prefix))
            fields.append(value)
    except BitswapMessageError:
        raise BitswapMessageError(f"malformed CID prefix {prefix.hex()}") from None
    version, codec, mh_code, length = fields
    hasher = _HASHERS.get(mh_code)
    if hasher is None:
        raise BitswapMessageError(f"CID prefix names hash 0x{mh_code:x}, which this node does not verify")
    if length != hasher().digest_size:
        raise BitswapMessageError(f"CID prefix digest length {length} for a {hasher().digest_size}-byte hash")
    if version == 0 and (codec != DAG_PB or mh_code != SHA2_256):
        raise BitswapMessageError("a CIDv0 prefix must be dag-pb with sha2-256")
    if version not in (0, 1):
        raise BitswapMessageError(f"CID prefix version {version}")
    return version, codec, mh_code, length


def cid_of_payload(prefix: bytes, data: bytes) -> CID:
    """The CID a payload block claims, by hashing ``data`` as its prefix says (run it off the event loop)."""
    version, codec, mh_code, _ = prefix_fields(prefix)
    digest = _HASHERS[mh_code](data).digest()
    if version == 0:
        return CID(b"\x12\x20" + digest)
    try:
        return CID.from_digest(codec, digest, mh_code)
    except InvalidCIDError as exc:
        raise BitswapMessageError(str(exc)) from None


def cid_of_v0_block(data: bytes) -> CID:
    """The CIDv0 a 1.0.0 ``blocks`` entry stands for (sha2-256, dag-pb)."""
    return CID(b"\x12\x20" + hashlib.sha256(data).digest())
