"""The benchmarks run end to end in --quick mode (those that take under ~10 s), and the
network bench's Helia baseline moves a real file between two Helia processes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURE = r"\d+\.\d+ \(\d+\.\d+-\d+\.\d+\)"  # median (min-max)


def run_bench(name: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_storage_quick_alternates_and_reports_wall_and_cpu() -> None:
    out = run_bench("storage.py")
    assert "2 rounds alternating" in out
    for phase in ("import", "export"):
        for side in ("baseline", "mycelnet"):
            # MB/s, CPU s, peak RSS, peak heap: each a median with its spread
            assert re.search(rf"^{phase}\s+{side}\s+{FIGURE}\s+{FIGURE}\s+{FIGURE}\s+{FIGURE}$", out, re.M), out
        assert re.search(rf"^{phase}\s+ratio\s+{FIGURE}\s+{FIGURE}", out, re.M), out  # MB/s and CPU


def test_runtime_quick_measures_the_baseline_every_round() -> None:
    out = run_bench("runtime.py")
    assert "in each of 2 rounds, alternating" in out
    assert re.search(rf"bare in-process call\s+\d+\.\d+\s+\d+\.\d+\s+{FIGURE}$", out, re.M), out
    for case in ("wasm warm", "wasm cold", "python cold", "python warm"):
        for part in ("sandbox only", "whole job"):
            assert re.search(rf"{case} {part}\s+\d+\.\d+\s+\d+\.\d+\s+{FIGURE}\s+\d+x$", out, re.M), out


def test_start_reports_a_node_start_and_a_cluster_start() -> None:
    out = run_bench("start.py")
    assert re.search(rf"^  this +CPU {FIGURE} s, wall {FIGURE} s, RSS {FIGURE} MiB$", out, re.M), out
    figures = rf"wall {FIGURE} s; per node: start CPU {FIGURE} s, RSS after 0 s {FIGURE} MiB"
    assert re.search(rf"^  this +{figures}$", out, re.M), out


def test_helia_baseline_fetches_a_file_by_bitswap(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (make setup needs it for the dev chain too)")
    assert (ROOT / "node_modules" / "helia").is_dir(), "run `make setup` (npm ci) first"
    from bench.network import helia_run

    sample = helia_run(4 << 20, tmp_path)  # the fetcher checks length and sha256, or this raises
    assert sample.mb_s > 0 and sample.cpu_sender > 0 and sample.cpu_receiver > 0
