from __future__ import annotations

import json
import shutil
from pathlib import Path

import nacl.signing
import pytest

from agents import receipt
from agents.bundle import agent_id_of, open_bundle, pack
from agents.errors import ManifestError, ReceiptError
from agents.manifest import load
from storage import dagcbor
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.files import cat
from storage.peerid import peer_id_for
from storage.unixfs.exporter import list_directory
from tests.agents.harness import EXAMPLES, AgentHarness

GOOD = """
name = "demo"
version = "1.0.0"
runtime = "python"
entrypoint = "main.py"
[limits]
cpu_seconds = 5
"""


def _bundle(tmp_path: Path, manifest: str, entry: str = "main.py") -> Path:
    directory = tmp_path / "bundle"
    directory.mkdir(exist_ok=True)
    (directory / "mycel-agent.toml").write_text(manifest)
    (directory / entry).write_text("print('hi')\n")
    return directory


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (GOOD.replace('name = "demo"', 'name = "Bad Name!"'), "name"),
        (GOOD.replace('version = "1.0.0"', 'version = "one"'), "version"),
        (GOOD.replace('runtime = "python"', 'runtime = "java"'), "runtime"),
        (GOOD.replace('entrypoint = "main.py"', 'entrypoint = "../escape.py"'), "entrypoint"),
        (GOOD.replace('entrypoint = "main.py"', 'entrypoint = "missing.py"'), "is not a file"),
        (GOOD.replace("cpu_seconds = 5", "cpu_seconds = 0"), "limits.cpu_seconds"),
        (GOOD.replace("cpu_seconds = 5", 'cpu_seconds = "5"'), "limits.cpu_seconds"),
        (GOOD.replace("cpu_seconds = 5", "gpu_hours = 5"), "unknown limit"),
        (GOOD + "\n[needs]\ngpu = 1\n", "needs.gpu"),
        (GOOD + '\n[needs]\nregions = "eu"\n', "needs.regions"),
        ("colour = 1\n" + GOOD, "unknown field"),
        (GOOD.replace('name = "demo"', ""), "name is required"),
        ("not = [toml", "not valid TOML"),
    ],
)
def test_every_wrong_field_has_a_clear_error(tmp_path: Path, change: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load(_bundle(tmp_path, change))


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no mycel-agent\.toml"):
        load(tmp_path)


def test_same_directory_same_agent_id_everywhere(tmp_path: Path) -> None:
    source = EXAMPLES / "wasm-wordcount"
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    with BlockStore(tmp_path / "a") as first, BlockStore(tmp_path / "b") as second:
        a, b = pack(source, first), pack(copy, second)
        assert a.agent_id == b.agent_id == agent_id_of(source)
        assert open_bundle(second, b.agent_id).manifest == a.manifest
        record = dagcbor.decode(first.get(a.agent_id))
        assert record["code"] == a.code and record["runtime"] == "wasm"
    (copy / "extra.txt").write_text("changes the code DAG")
    assert agent_id_of(copy) != agent_id_of(source)


def _sample_receipt(key: nacl.signing.SigningKey) -> bytes:
    record = receipt.Receipt(
        job_id="job-1",
        agent=CID.for_block(b"agent", 0x71),
        inputs={"data": CID.for_block(b"input")},
        result=CID.for_block(b"result", 0x70),
        status="ok",
        runtime="wasm",
        runtime_version="wasmtime-50.0.1",
        usage=receipt.Usage(0.5, 1 << 20, 0.6, 100, 10),
        started_at=1.0,
        ended_at=2.0,
        node=peer_id_for(bytes(key.verify_key)),
    )
    return receipt.sign(record, key)


def test_receipt_verifies_and_any_changed_byte_fails() -> None:
    key = nacl.signing.SigningKey(bytes(32))
    signed = _sample_receipt(key)
    assert receipt.verify(signed).job_id == "job-1"
    for index in range(len(signed)):
        tampered = bytearray(signed)
        tampered[index] ^= 0x01
        with pytest.raises(ReceiptError):
            receipt.verify(bytes(tampered))


def test_receipt_signed_by_another_node_fails() -> None:
    honest, other = nacl.signing.SigningKey(bytes(32)), nacl.signing.SigningKey(bytes([1]) * 32)
    envelope = dagcbor.decode(_sample_receipt(honest))
    envelope["sig"] = dagcbor.decode(_sample_receipt(other))["sig"]
    with pytest.raises(ReceiptError, match="does not verify"):
        receipt.verify(dagcbor.encode(envelope))
    record = dagcbor.decode(_sample_receipt(honest))["receipt"]
    with pytest.raises(ReceiptError, match="different node"):
        receipt.sign(receipt._from_record(record), other)


@pytest.mark.parametrize("junk", [b"", b"\xa0", dagcbor.encode({"receipt": {}, "sig": b""}), dagcbor.encode([1])])
def test_malformed_receipts(junk: bytes) -> None:
    with pytest.raises(ReceiptError):
        receipt.verify(junk)


def test_wordcount_is_deterministic_and_its_receipt_checks_out(harness: AgentHarness, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("The cat sat on the mat.\nThe end.\n")
    (tmp_path / "docs" / "b.txt").write_text("A cat and a dog.")
    docs = harness.put(tmp_path / "docs")
    first = harness.run(EXAMPLES / "wasm-wordcount", inputs={"docs": docs})
    second = harness.run(EXAMPLES / "wasm-wordcount", inputs={"docs": docs})
    assert first.status == "ok" and first.result is not None
    assert first.result == second.result
    entries = dict(list_directory(harness.store.get, first.result))
    counts = json.loads(b"".join(cat(harness.store, entries["counts.json"])))
    assert counts["files"] == 2 and counts["words"] == 13 and counts["top"][0] == ["the", 3]
    checked = receipt.verify(first.receipt)
    assert checked.result == first.result and checked.inputs == {"docs": docs}
    assert checked.runtime == "wasm" and checked.usage.bytes_in == 49 and checked.node == harness.executor.node
