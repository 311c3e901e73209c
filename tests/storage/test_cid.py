from __future__ import annotations

import pytest

from storage.cid import CID, DAG_CBOR, DAG_PB, RAW
from storage.errors import InvalidCIDError
from tests.support import load_json

VECTORS = load_json("cid/cid_vectors.json")
assert isinstance(VECTORS, dict)


@pytest.mark.parametrize("case", VECTORS["parse"], ids=lambda c: c["cid"][:24])
def test_parse_matches_reference_implementations(case: dict[str, str]) -> None:
    cid = CID.parse(case["cid"])
    assert bytes(cid).hex() == case["binary"]
    assert cid.version == int(case["version"])
    assert cid.codec == int(case["codec"])
    assert cid.hash_code == int(case["multihashCode"])
    assert cid.digest.hex() == case["digest"]
    assert cid.multihash.hex() == case["multihash"]
    assert str(cid.to_v1()) == case["v1_base32"]
    assert CID.parse(bytes(cid)) == cid


@pytest.mark.parametrize("case", [c for c in VECTORS["raw_blocks"] if "hex" in c], ids=lambda c: c["name"])
def test_raw_block_cid(case: dict[str, str]) -> None:
    cid = CID.for_block(bytes.fromhex(case["hex"]), RAW)
    assert str(cid) == case["cid_raw_v1_base32"]
    assert cid.matches(bytes.fromhex(case["hex"]))
    assert not cid.matches(bytes.fromhex(case["hex"]) + b"x")


def test_v0_prints_in_base58_and_round_trips() -> None:
    text = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    cid = CID.parse(text)
    assert cid.version == 0 and cid.codec == DAG_PB
    assert str(cid) == text
    assert cid.to_v1().version == 1 and cid.to_v1().multihash == cid.multihash


def test_other_multibases_are_accepted_and_equal() -> None:
    cid = CID.for_block(b"hello", DAG_CBOR)
    assert CID.parse(cid.encode("base58btc")) == cid
    assert CID.parse(cid.encode("base36")) == cid
    assert CID.parse(str(cid).upper()[0].lower() + str(cid)[1:].upper()) == cid  # B32 upper payload


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello",
        "Qm123",
        "bafy",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk",  # one char short
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykuu",  # one char long
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk!",
        "bAfkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # mixed case
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQ0",  # 0 is not base58
        "zQmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",  # v0 bytes inside a multibase
        "baaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypsaijcemsq",  # version 0 byte in v1 form
    ],
)
def test_malformed_cid_strings_raise_a_typed_error(text: str) -> None:
    with pytest.raises(InvalidCIDError) as info:
        CID.parse(text)
    assert "CID" in str(info.value)


@pytest.mark.parametrize(
    "binary",
    [b"", b"\x01", b"\x02\x55\x12\x20" + bytes(32), b"\x01\x55\x12\x20" + bytes(31), b"\x01\x55\x12\x21" + bytes(32)],
)
def test_malformed_binary_cids_raise(binary: bytes) -> None:
    with pytest.raises(InvalidCIDError):
        CID(binary)


def test_non_string_input_is_refused() -> None:
    with pytest.raises(InvalidCIDError):
        CID.parse(42)  # type: ignore[arg-type]


def test_equality_and_hash_follow_bytes() -> None:
    a = CID.for_block(b"x")
    b = CID.parse(str(a))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != CID.for_block(b"x", DAG_CBOR)
