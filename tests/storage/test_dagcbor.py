from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import dagcbor
from storage.cid import CID, DAG_CBOR
from storage.errors import CodecError
from tests.support import VECTORS

FIXTURES = sorted((VECTORS / "ipld-codec-fixtures" / "fixtures").glob("*/*.dag-cbor"))


def test_all_fixtures_present() -> None:
    assert len(FIXTURES) == 128


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.parent.name)
def test_fixture_round_trips_byte_exact(path: Path) -> None:
    block = path.read_bytes()
    value = dagcbor.decode(block)
    assert dagcbor.encode(value) == block
    assert str(CID.for_block(block, DAG_CBOR)) == path.stem


def test_negative_fixtures_are_rejected() -> None:
    cases = json.loads(
        (VECTORS / "ipld-codec-fixtures/negative-fixtures/dag-cbor/decode/duplicate-keys.json").read_text()
    )
    for case in cases:
        with pytest.raises(CodecError, match="duplicate map key"):
            dagcbor.decode(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize(
    ("hex_block", "reason"),
    [
        ("9f01ff", "indefinite-length"),
        ("5f4100ff", "indefinite-length"),
        ("fa3fc00000", "32-bit float"),
        ("f93e00", "16-bit float"),
        ("fb7ff8000000000000", "NaN"),
        ("fb7ff0000000000000", "NaN and Infinity"),
        ("0102", "trailing"),
        ("1801", "non-minimal"),
        ("f7", "simple value"),
        ("c10a", "tag 1"),
        ("a1010203", "not a string"),
        ("a2616201616101", "canonical order"),
        ("a26161016161 02".replace(" ", ""), "duplicate"),
        ("d82a4100", "invalid CID"),
        ("d82a420001", "invalid CID"),
        ("d82a4101", "0x00"),
        ("d82a01", "byte string"),
        ("", "empty"),
        ("62c328", "UTF-8"),
        ("83", ""),
    ],
)
def test_strictness(hex_block: str, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        dagcbor.decode(bytes.fromhex(hex_block))
    assert reason in str(info.value)


def test_encoding_sorts_keys_length_first() -> None:
    encoded = dagcbor.encode({"bb": 1, "a": 2, "c": 3, "aaa": 4})
    assert list(dagcbor.decode(encoded)) == ["a", "c", "bb", "aaa"]


def test_floats_are_always_64_bit() -> None:
    assert dagcbor.encode(1.5) == bytes.fromhex("fb3ff8000000000000")


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, {1: "x"}, 2**64, -(2**64) - 1, object(), {"a": {1, 2}}],
    ids=lambda value: type(value).__name__ if type(value) is object else str(value),  # stable ids (no address)
)
def test_encode_refuses_what_ipld_cannot_hold(value: object) -> None:
    with pytest.raises(CodecError):
        dagcbor.encode(value)


def test_cids_are_tag_42_and_found_as_links() -> None:
    child = CID.for_block(b"child")
    block = dagcbor.encode({"link": child, "list": [child, {"deep": child}]})
    assert bytes.fromhex("d82a") + b"\x58\x25\x00" + bytes(child) in block
    assert list(dagcbor.iter_links(dagcbor.decode(block))) == [child, child, child]


def test_deep_nesting_is_bounded() -> None:
    value: object = 1
    for _ in range(300):
        value = [value]
    with pytest.raises(CodecError, match="nested"):
        dagcbor.encode(value)
    with pytest.raises(CodecError):
        dagcbor.decode(b"\x81" * 100_000 + b"\x01")


ipld_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=20,
)


@given(ipld_values)
def test_any_value_round_trips(value: object) -> None:
    block = dagcbor.encode(value)
    assert dagcbor.encode(dagcbor.decode(block)) == block


class _PeerError(ValueError):
    pass


def test_decode_message_checks_size_then_codec_then_shape() -> None:
    """A peer's message is refused by size before it is parsed, then by codec, then by shape."""
    good = dagcbor.encode({"op": "x", "n": 1})
    assert dagcbor.decode_message(good, len(good), "a test message", _PeerError) == {"op": "x", "n": 1}
    with pytest.raises(_PeerError, match="a test message is at most 4 bytes"):
        dagcbor.decode_message(b"\xff" * 5, 4, "a test message", _PeerError)  # too big: never parsed
    with pytest.raises(_PeerError, match="not valid DAG-CBOR"):
        dagcbor.decode_message(b"\xa1\x61a\x01\x00", 64, "a test message", _PeerError)  # trailing byte
    with pytest.raises(_PeerError, match="is a DAG-CBOR map"):
        dagcbor.decode_message(dagcbor.encode([1, 2]), 64, "a test message", _PeerError)
