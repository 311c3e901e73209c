from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from storage import dagpb
from storage.cid import CID, DAG_PB
from storage.errors import CodecError
from tests.support import VECTORS

FIXTURES = sorted((VECTORS / "ipld-codec-fixtures" / "fixtures").glob("*/*.dag-pb"))
NEGATIVE = VECTORS / "ipld-codec-fixtures" / "negative-fixtures" / "dag-pb"


def test_all_fixtures_present() -> None:
    assert len(FIXTURES) == 17


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.parent.name)
def test_fixture_round_trips_byte_exact(path: Path) -> None:
    block = path.read_bytes()
    node = dagpb.decode(block)
    assert node.encode() == block
    assert CID.for_block(block, DAG_PB).to_v1() == CID.parse(path.stem)


@pytest.mark.parametrize("case", json.loads((NEGATIVE / "decode" / "edges.json").read_text()), ids=lambda c: c["name"])
def test_decode_negative_fixtures(case: dict[str, str]) -> None:
    with pytest.raises(CodecError):
        dagpb.decode(bytes.fromhex(case["hex"]))


def _from_dag_json(value: Any) -> Any:
    """The negative encode fixtures are written in dag-json; turn them into IPLD values."""
    if isinstance(value, dict):
        if set(value) == {"/"}:
            inner = value["/"]
            if isinstance(inner, str):
                return CID.parse(inner)
            if isinstance(inner, dict) and set(inner) == {"bytes"}:
                return base64.b64decode(inner["bytes"] + "=" * (-len(inner["bytes"]) % 4))
        return {key: _from_dag_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dag_json(item) for item in value]
    return value


ENCODE_CASES = [
    case
    for name in ("basic-datamodel-kinds.json", "invalid-forms.json")
    for case in json.loads((NEGATIVE / "encode" / name).read_text())
]


@pytest.mark.parametrize("case", ENCODE_CASES, ids=lambda c: c["name"])
def test_encode_negative_fixtures(case: dict[str, Any]) -> None:
    with pytest.raises(CodecError, match="Invalid DAG-PB form"):
        dagpb.from_ipld(_from_dag_json(case["dag-json"]))


def test_valid_form_encodes() -> None:
    link = CID.parse("QmNPWHBrVQiiV8FpyNuEPhB9E2rbvdy9Yx79EY1EJuyf9o")
    node = dagpb.from_ipld({"Data": b"\x01", "Links": [{"Hash": link, "Name": "a", "Tsize": 3}]})
    assert dagpb.decode(node.encode()) == node


@pytest.mark.parametrize(
    "hex_block",
    ["0a", "0a05", "1a00", "08", "0a00 0a00".replace(" ", ""), "12030a0100", "12040a00 0a00".replace(" ", "")],
)
def test_malformed_blocks(hex_block: str) -> None:
    with pytest.raises(CodecError):
        dagpb.decode(bytes.fromhex(hex_block))
