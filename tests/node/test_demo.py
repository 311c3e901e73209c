"""``mycel demo``, the README's first command: 3 nodes, a chain, paid agents, all verified."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from node.cluster import http_json, read_cluster_file
from tests.support import CliRunner


def _ours(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_demo_places_verifies_and_pays_then_leaves_nothing(mycel: CliRunner, tmp_path: Path) -> None:
    started = time.monotonic()
    result = mycel("demo", "--dir", tmp_path / "demo", timeout=170)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert time.monotonic() - started < 120
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines()
            if "CID+receipt+chain" in line]  # fmt: skip
    assert len(rows) == 3, result.stdout
    placed = {row[0]: row[1] for row in rows}
    assert placed["anomalies (sensor-anomaly)"] == "node0 (eu-edge)"  # next to the telemetry
    assert placed["search (doc-search)"] == "node1 (us-edge)"  # next to the documents
    assert placed["wordcount (wasm-wordcount)"] == "node1 (us-edge)"
    assert all(row[4] == "0" for row in rows)  # no input byte moved
    assert "all results verified by CID, receipt and chain" in result.stdout
    assert not _ours(str(tmp_path / "demo"))  # no node, no anvil left behind


def test_demo_keep_leaves_a_cluster_to_explore(mycel: CliRunner, tmp_path: Path) -> None:
    result = mycel("demo", "--keep", "--dir", tmp_path / "demo", timeout=170)
    try:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        nodes = read_cluster_file(tmp_path / "demo" / "cluster")
        settled = sum(http_json(f"{n.api_url}/v1/ledger")["claims"]["settled"] for n in nodes)
        assert settled == 3
        assert json.loads((tmp_path / "demo" / "cluster" / "cluster.json").read_text())["chain"]["rpc_url"]
    finally:
        down = mycel("cluster", "down", "--dir", tmp_path / "demo" / "cluster")
    assert down.returncode == 0, down.stderr
    assert not _ours(str(tmp_path / "demo"))
