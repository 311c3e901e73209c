"""The hand-written Bitswap protobuf codec: round trips, proto3 details, bounds and hostile input."""

from __future__ import annotations

import contextlib
import hashlib

import pytest

from node.ipfs import bitswap_pb as pb
from node.ipfs.bitswap_pb import BitswapMessageError, BlockPresence, Message, Payload, Presence, WantEntry, WantType
from storage.cid import CID, DAG_PB, RAW, SHA2_256
from storage.varint import encode_uvarint

LEAF = CID.for_block(b"leaf", RAW)
V0 = CID(b"\x12\x20" + hashlib.sha256(b"node").digest())


def _len(number: int, data: bytes) -> bytes:
    return encode_uvarint(number << 3 | 2) + encode_uvarint(len(data)) + data


def test_round_trip_of_every_field() -> None:
    message = Message(
        entries=[
            WantEntry(LEAF, priority=7, want_type=WantType.HAVE, send_dont_have=True),
            WantEntry(V0, priority=-3, cancel=True),  # negative int32: ten-byte varint
        ],
        full=True,
        blocks=[b"old style"],
        payload=[Payload(pb.prefix_of(LEAF), b"leaf")],
        presences=[BlockPresence(LEAF, Presence.HAVE), BlockPresence(V0, Presence.DONT_HAVE)],
        pending_bytes=12345,
    )
    assert pb.decode(pb.encode(message)) == message


def test_known_bytes_of_a_want_have_entry() -> None:
    """The exact proto3 encoding: defaults omitted, fields in number order (what protobufjs/Go write)."""
    raw = pb.encode(Message(entries=[WantEntry(LEAF, priority=1, want_type=WantType.HAVE, send_dont_have=True)]))
    cid = bytes(LEAF)
    entry = b"\x0a" + bytes([len(cid)]) + cid + b"\x10\x01" + b"\x20\x01" + b"\x28\x01"
    assert raw == b"\x0a" + bytes([len(entry) + 2]) + b"\x0a" + bytes([len(entry)]) + entry


def test_unknown_fields_are_skipped() -> None:
    known = pb.encode(Message(presences=[BlockPresence(LEAF, Presence.HAVE)]))
    extra = encode_uvarint(9 << 3 | 0) + b"\x05" + _len(10, b"future") + encode_uvarint(11 << 3 | 5) + b"abcd"
    assert pb.decode(extra + known).presences == [BlockPresence(LEAF, Presence.HAVE)]


def test_prefix_and_cid_of_payload() -> None:
    assert pb.prefix_of(LEAF) == b"\x01\x55\x12\x20"
    assert pb.prefix_of(V0) == b"\x00\x70\x12\x20"
    assert pb.cid_of_payload(pb.prefix_of(LEAF), b"leaf") == LEAF
    assert pb.cid_of_payload(pb.prefix_of(V0), b"node") == V0
    assert pb.cid_of_payload(pb.prefix_of(LEAF), b"other") != LEAF  # the bytes decide, not the sender
    with pytest.raises(BitswapMessageError, match="does not verify"):
        pb.cid_of_payload(b"\x01\x55\x00\x04", b"leaf")  # identity "hash": nothing would be checked
    with pytest.raises(BitswapMessageError, match="digest length"):
        pb.cid_of_payload(b"\x01\x55\x12\x10", b"leaf")
    with pytest.raises(BitswapMessageError, match="CIDv0"):
        pb.cid_of_payload(b"\x00\x55\x12\x20", b"leaf")
    with pytest.raises(BitswapMessageError, match="malformed"):
        pb.cid_of_payload(b"\x01\x55", b"leaf")
    assert pb.cid_of_v0_block(b"node") == V0
    assert CID.from_digest(DAG_PB, hashlib.sha256(b"x").digest(), SHA2_256).version == 1


def test_payload_size_matches_the_encoding() -> None:
    for size in (0, 1, 127, 128, 300, 262_144, 1 << 20):
        encoded = pb.encode(Message(payload=[Payload(b"\x01\x55\x12\x20", bytes(size))]))
        assert pb.payload_size(size, 4) == len(encoded)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x0a\x05\x0a\x03", "runs past"),  # wantlist claims more bytes than there are
        (b"\x0a", "inside a varint"),
        (b"\x28" + b"\xff" * 11, "longer than 10 bytes"),
        (b"\x0b", "wire type 3"),  # a group
        (b"\x00\x00", "field number 0"),
        (b"\x08\x01", "wire type 0, expected 2"),  # wantlist as a varint
        (_len(1, _len(1, _len(1, b"\x01\x55\x12\x20" + b"\x00" * 5))), "digest length"),  # bad CID
        (_len(1, _len(1, b"\x10\x01")), "without a CID"),
        (_len(1, _len(1, _len(1, bytes(LEAF)) + b"\x20\x07")), "wantType: unknown value 7"),
        (_len(4, _len(1, bytes(LEAF)) + b"\x10\x05"), "type: unknown value 5"),
        (_len(3, _len(2, b"data")), "without a CID prefix"),
        (_len(1, _len(1, _len(1, b"\x01" * 200))), "over the 128-byte limit"),
        (b"\x28\xff\xff\xff\xff\x0f", "int32 field out of range"),
        (b"\x31" + b"\x00" * 3, "runs past"),  # a fixed64 cut short
    ],
)
def test_malformed_input_is_a_typed_error(data: bytes, reason: str) -> None:
    with pytest.raises(BitswapMessageError, match=reason):
        pb.decode(data)


def test_size_and_count_bounds() -> None:
    with pytest.raises(BitswapMessageError, match="over the"):
        pb.decode(bytes(pb.MAX_MESSAGE + 1))
    entry = _len(1, _len(1, bytes(LEAF)))
    with pytest.raises(BitswapMessageError, match="wantlist entries"):
        pb.decode(_len(1, entry * (pb.MAX_ENTRIES + 1)))
    assert len(pb.decode(_len(1, entry * pb.MAX_ENTRIES)).entries) == pb.MAX_ENTRIES
    presence = _len(4, _len(1, bytes(LEAF)))
    with pytest.raises(BitswapMessageError, match="blocks and presences"):
        pb.decode(presence * (pb.MAX_BLOCKS + 1))


def test_random_garbage_never_escapes_as_another_exception() -> None:
    seed = b"garbage"
    for i in range(2000):
        data = hashlib.sha256(seed + i.to_bytes(4, "big")).digest() * (1 + i % 3)
        with contextlib.suppress(BitswapMessageError):  # anything else fails the test
            pb.decode(data)
