"""The real ``mycel`` command, run as a subprocess, against real stores (Kubo-style CLI tests)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import CliRunner, load_json, seeded_bytes

CID_VECTORS: Any = load_json("cid/cid_vectors.json")
JS_VECTORS: Any = load_json("unixfs/js_importer_vectors.json")


def test_cid_of_file_matches_ipfs(mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "hw").write_bytes(b"hello world\n")
    assert mycel("cid", tmp_path / "hw").stdout.strip() == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert mycel("cid", "--cid-version", "0", tmp_path / "hw").stdout.strip() == (
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    )
    big = tmp_path / "big"
    big.write_bytes(bytes(1 << 20))
    expected = next(v for v in CID_VECTORS["unixfs_files"] if v["name"] == "zeros-1048576")
    assert mycel("cid", big).stdout.strip() == expected["kubo_add_cid_version_1"]
    raw = next(v for v in CID_VECTORS["raw_blocks"] if v["name"] == "zeros-1048576")
    assert mycel("cid", "--raw", big).stdout.strip() == raw["cid_raw_v1_base32"]


def test_cid_of_directory_matches_ipfs(mycel: CliRunner, tmp_path: Path) -> None:
    case = JS_VECTORS["directories"][1]
    for rel, size in case["tree"].items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(seeded_bytes(rel, size))
    assert mycel("cid", tmp_path / "root").stdout.strip() == case["cid_v1"]


def test_put_get_pin_gc_cycle(mycel: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.csv").write_bytes(seeded_bytes("csv", 900_000))
    (src / "notes.txt").write_text("notes")
    put = mycel("put", src)
    assert put.returncode == 0, put.stderr
    root = put.stdout.strip()
    assert root == mycel("cid", src).stdout.strip()
    assert root in mycel("pin", "ls").stdout

    assert mycel("get", root, "-o", tmp_path / "out").returncode == 0
    assert (tmp_path / "out" / "data.csv").read_bytes() == (src / "data.csv").read_bytes()
    assert mycel("verify", root, tmp_path / "out").returncode == 0

    assert "removed 0 blocks" in mycel("gc").stdout
    assert mycel("pin", "rm", root).returncode == 0
    assert "removed 7 blocks" in mycel("gc").stdout  # 4 leaves + file root, notes, directory
    missing = mycel("get", root, "-o", tmp_path / "again")
    assert missing.returncode == 1 and "not in the local store" in missing.stderr
    assert not (tmp_path / "again").exists()


def test_car_export_import_between_data_dirs(mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(seeded_bytes("car-cli", 600_000))
    root = mycel("put", tmp_path / "f").stdout.strip()
    assert mycel("car", "export", root, "-o", tmp_path / "f.car").returncode == 0
    other = tmp_path / "other-node"
    imported = mycel("car", "import", tmp_path / "f.car", data_dir_override=other)
    assert imported.returncode == 0, imported.stderr
    assert f"{root}\tpinned" in imported.stdout
    assert mycel("store", "verify", data_dir_override=other).returncode == 0


def test_truncated_car_is_one_line_error(mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(seeded_bytes("trunc", 300_000))
    root = mycel("put", tmp_path / "f").stdout.strip()
    mycel("car", "export", root, "-o", tmp_path / "f.car")
    data = (tmp_path / "f.car").read_bytes()
    (tmp_path / "cut.car").write_bytes(data[: len(data) - 1000])
    result = mycel("car", "import", tmp_path / "cut.car", data_dir_override=tmp_path / "x")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "truncated" in result.stderr and "Traceback" not in result.stderr


def test_verify_exit_codes(mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    cid = mycel("cid", tmp_path / "a").stdout.strip()
    assert mycel("verify", cid, tmp_path / "a").returncode == 0
    (tmp_path / "a").write_text("b")
    bad = mycel("verify", cid, tmp_path / "a")
    assert bad.returncode == 3
    assert bad.stderr.startswith("error: mismatch:") and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("bad", ["notacid", "bafy", "Qm123", ""])
def test_malformed_cid_is_one_clear_line(mycel: CliRunner, bad: str) -> None:
    result = mycel("get", bad)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "is not a CID" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_store_verify_detects_on_disk_corruption(mycel: CliRunner, tmp_path: Path) -> None:
    payload = seeded_bytes("disk", 200_000)
    (tmp_path / "f").write_bytes(payload)
    root = mycel("put", tmp_path / "f").stdout.strip()
    assert mycel("store", "verify").returncode == 0
    data_file = tmp_path / "mycel-data" / "blocks" / "data.mdb"
    raw = bytearray(data_file.read_bytes())
    raw[raw.find(payload[:4096]) + 10] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    result = mycel("store", "verify")
    assert result.returncode == 3
    assert f"corrupt: {root}" in result.stderr
    got = mycel("get", root, "-o", tmp_path / "out")
    assert got.returncode == 3 and "failed verification" in got.stderr
    assert not (tmp_path / "out").exists()


def test_pin_add_of_missing_dag_fails_clearly(mycel: CliRunner) -> None:
    result = mycel("pin", "add", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
    assert result.returncode == 1 and "missing from the local store" in result.stderr


def test_usage_errors_exit_2(mycel: CliRunner, tmp_path: Path) -> None:
    assert mycel("cid").returncode == 2
    assert mycel("cid", "--raw", tmp_path).returncode == 2
    assert mycel("no-such-command").returncode == 2


def test_help_runs_in_a_real_process(mycel: CliRunner) -> None:
    """One real ``--help`` (tests/node/test_cli_help.py checks every command's text in process)."""
    result = mycel("put", "--help")
    assert result.returncode == 0 and "Example: mycel put" in result.stdout


def test_agent_pack_and_run_from_the_cli(mycel: CliRunner, tmp_path: Path) -> None:
    from tests.support import REPO_ROOT

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("one two two")
    docs = mycel("put", tmp_path / "docs").stdout.strip()
    wordcount = REPO_ROOT / "examples" / "wasm-wordcount"
    agent_id = mycel("agent", "pack", wordcount).stdout.strip()
    assert agent_id.startswith("bafyrei")
    ran = mycel("agent", "run", agent_id, "--input", f"docs={docs}", "--json")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.count('"status": "ok"') == 1
    bad = mycel("agent", "pack", tmp_path / "docs")
    assert bad.returncode == 1 and "no mycel-agent.toml" in bad.stderr and bad.stderr.count("\n") == 1
    # the fixture with a roomy wall limit: on a loaded 2-core host a 2 s CPU budget can take
    # longer than the fixture's 4 s of wall time, and this test is about the CPU limit
    spinner = tmp_path / "hostile-python"
    shutil.copytree(REPO_ROOT / "tests" / "agents" / "fixtures" / "hostile-python", spinner)
    manifest = spinner / "mycel-agent.toml"
    manifest.write_text(manifest.read_text().replace("wall_seconds = 4", "wall_seconds = 120"))
    killed = mycel("agent", "run", spinner, "--arg", "spin")
    assert killed.returncode == 1 and "killed: cpu limit" in killed.stderr, killed.stderr
