"""Fixtures shared by every test package."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage.blockstore import BlockStore

VECTORS = Path(__file__).parent / "vectors"
REPO_ROOT = Path(__file__).parent.parent


@pytest.fixture
def vectors() -> Path:
    return VECTORS


def load_json(relative: str) -> object:
    return json.loads((VECTORS / relative).read_text())


def seeded_bytes(seed: str, size: int) -> bytes:
    """The deterministic content of tests/vectors/unixfs: sha256(seed:j) digests end to end."""
    out = bytearray()
    j = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{j}".encode()).digest()
        j += 1
    return bytes(out[:size])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlockStore]:
    with BlockStore(tmp_path / "blocks", map_size=8 << 20) as opened:
        yield opened


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


CliRunner = Callable[..., CliResult]


@pytest.fixture
def mycel(tmp_path: Path) -> CliRunner:
    """Run the real ``mycel`` command in a subprocess against a scratch data dir."""
    data_dir = tmp_path / "mycel-data"

    def run(*args: str | os.PathLike[str], data_dir_override: Path | None = None, timeout: float = 120) -> CliResult:
        env = dict(os.environ, MYCEL_DATA_DIR=str(data_dir_override or data_dir))
        proc = subprocess.run(
            [sys.executable, "-m", "node.cli.main", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., list[Any]]]:
    """Start real node processes with ``cluster(n)``; all are stopped (and checked gone) after the test."""
    from node.cluster import cluster_down, cluster_up, read_cluster_file

    directories: list[Path] = []

    def start(count: int, regions: list[str] | None = None, timeout: float = 60.0) -> list[Any]:
        directory = tmp_path / f"cluster{len(directories)}"
        directories.append(directory)
        return cluster_up(count, directory, regions, timeout)

    yield start
    pids = []
    for directory in directories:
        with contextlib.suppress(Exception):
            pids += [node.pid for node in read_cluster_file(directory)]
        cluster_down(directory)
    leftovers = [pid for pid in pids if _process_alive(pid)]
    assert not leftovers, f"node processes left running: {leftovers}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True
