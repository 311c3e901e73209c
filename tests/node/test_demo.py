"""``mycel demo``, the README's first command: 3 nodes, a chain, paid agents, all verified."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from node.cli.demo_cmd import DemoJob, _blocks
from node.cluster import http_json, read_cluster_file
from tests.support import REPO_ROOT, CliRunner

HEADER = re.compile(r"^(\w+) \(([\w-]+)\): (\w+)$")


def _parse_blocks(text: str) -> dict[str, dict[str, str]]:
    """The demo's per-job blocks: 'label (agent): state' then 'key   value' lines (wrapped
    values continue on lines with an empty key column)."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    key = ""
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            current = blocks[f"{header[1]} ({header[2]})"] = {"state": header[3]}
            continue
        if current is None or not line.startswith("  "):
            current = None if not line.strip() or not line.startswith(" ") else current
            continue
        head, value = line[:12].strip(), line[12:].strip()
        if head:
            key = head
            current[key] = value
        elif key:
            current[key] += " " + value
    return blocks


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
    assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout  # a pipe: 80 columns
    blocks = _parse_blocks(result.stdout)
    assert set(blocks) == {"anomalies (sensor-anomaly)", "search (doc-search)", "wordcount (wasm-wordcount)"}, (
        result.stdout
    )
    assert all(b["verified"] == "CID+receipt+chain" and b["paid"].endswith("gwei") for b in blocks.values())
    placed = {label: block["ran on"].split(",")[0] for label, block in blocks.items()}
    assert placed["anomalies (sensor-anomaly)"] == "node0 (eu-edge)"  # next to the telemetry
    assert placed["search (doc-search)"] == "node1 (us-edge)"  # next to the documents
    assert placed["wordcount (wasm-wordcount)"] == "node1 (us-edge)"
    assert all(block["ran on"].endswith(", 0 input bytes moved") for block in blocks.values())
    assert "all results verified by CID, receipt and chain" in result.stdout
    assert not _ours(str(tmp_path / "demo"))  # no node, no anvil left behind
    results = tmp_path / "demo" / "results"
    assert f"Results kept in {results}" in result.stdout.replace("\n", "")
    assert sorted(p.name for p in results.iterdir()) == ["anomalies", "search", "wordcount"]
    assert not (tmp_path / "demo" / "cluster").exists()  # the nodes' data is gone, the results are not


@pytest.mark.parametrize("width", [80, 120])
def test_demo_blocks_keep_every_field_at_narrow_widths(width: int) -> None:
    cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
    jobs = [
        DemoJob(
            "anomalies",
            "sensor-anomaly",
            {},
            node="P1",
            seconds=2.25,
            why="holds all 1,234,567 input bytes of the job's data on this node, in the region the job asked for, "
            "at the lowest price; nearest",
            moved=0,
            result=cid,
            verified="CID+receipt+chain",
            paid="0.003 gwei",
            state="verified",
        ),
        DemoJob("search", "doc-search", {}, state="failed", error="no node can run this job"),
    ]
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False).print(_blocks(jobs, {"P1": "node0 (eu-edge)"}))
    text = out.getvalue()
    assert all(len(line) <= width for line in text.splitlines())
    blocks = _parse_blocks(text)
    first = blocks["anomalies (sensor-anomaly)"]
    assert first["ran on"] == "node0 (eu-edge), 2.2 s, 0 input bytes moved"
    assert first["result"] == cid and first["verified"] == "CID+receipt+chain" and first["paid"] == "0.003 gwei"
    assert first["why"].startswith("holds all 1,234,567 input bytes") and first["why"].endswith("at the lowest price")
    assert blocks["search (doc-search)"]["why"] == "no node can run this job"


def test_ctrl_c_stops_the_demo_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli.main", "demo", "--dir", str(workdir)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, MYCEL_DATA_DIR=str(tmp_path / "home")),
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not (workdir / "cluster" / "cluster.json").exists():  # wait until the nodes are up
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr + stdout
    assert stderr.strip().splitlines() == ["interrupted: stopping the demo's nodes and chain"], stderr
    assert not _ours(str(workdir))


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
