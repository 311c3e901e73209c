"""sdk.verify offline: the CIDs IPFS computes (third-party vectors), receipts, tampering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from agents import receipt as receipts
from sdk import VerificationError, bytes_match, path_matches, verify_bytes, verify_path, verify_receipt
from storage.cid import CID
from storage.peerid import peer_id_for
from tests.storage.test_unixfs import FILE_CASES, _vector_bytes
from tests.support import load_json

CID_VECTORS: Any = load_json("cid/cid_vectors.json")


@pytest.mark.parametrize(("name", "size", "hex_value", "expected"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_verify_bytes_accepts_every_way_ipfs_names_a_file(
    name: str, size: int, hex_value: str | None, expected: dict[str, str]
) -> None:
    data = _vector_bytes(name, size, hex_value)
    for key in ("kubo_add_default_cidv0", "kubo_add_cid_version_1", "unixfs_v1_2025_profile"):
        assert verify_bytes(expected[key], data), key
    with pytest.raises(VerificationError, match="hash to"):
        verify_bytes(expected["kubo_add_cid_version_1"], data + b"x")
    assert not bytes_match(expected["kubo_add_cid_version_1"], data + b"x")


def test_verify_bytes_raw_blocks() -> None:
    for raw in CID_VECTORS["raw_blocks"][:5]:
        data = _vector_bytes(raw["name"], int(raw["size"]), raw.get("hex"))
        assert verify_bytes(raw["cid_raw_v1_base32"], data)


def test_verify_path_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("alpha")
    (tmp_path / "d" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 3000)
    from storage.unixfs.importer import NullSink, import_path

    root = import_path(tmp_path / "d", NullSink()).cid
    assert verify_path(root, tmp_path / "d")
    assert verify_path(str(root), tmp_path / "d")
    (tmp_path / "d" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 3000 + b"!")
    with pytest.raises(VerificationError, match=f"hashes to .*, not {root}"):
        verify_path(root, tmp_path / "d")  # raises like every check here: a mismatch cannot pass unnoticed
    assert not path_matches(root, tmp_path / "d")
    with pytest.raises(VerificationError, match="does not exist"):
        verify_path(root, tmp_path / "missing")
    with pytest.raises(VerificationError, match="not a CID"):
        verify_bytes("bafy-not-a-cid", b"")


def test_verify_receipt_checks_signature_job_result_and_node() -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    node = peer_id_for(bytes(key.verify_key))
    result = CID.for_block(b"result")
    record = receipts.Receipt("job-1", CID.for_block(b"agent"), {}, result, "ok", "wasm", "1",
                              receipts.Usage(0.1, 1, 0.2, 3, 4), 1.0, 2.0, node)  # fmt: skip
    signed = receipts.sign(record, key)
    assert verify_receipt(signed, "job-1", result, node).node == node
    with pytest.raises(VerificationError, match="for job job-1, not job-2"):
        verify_receipt(signed, "job-2")
    with pytest.raises(VerificationError, match="names result"):
        verify_receipt(signed, result=CID.for_block(b"other"))
    with pytest.raises(VerificationError, match="signed by"):
        verify_receipt(signed, node="12D3KooWsomeoneelse")
    forged = bytearray(signed)
    forged[-5] ^= 1
    with pytest.raises(VerificationError, match="does not verify"):
        verify_receipt(bytes(forged))
