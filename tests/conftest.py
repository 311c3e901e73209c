"""Fixtures shared by every test package (helpers are in tests/support.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.blockstore import BlockStore
from tests.support import VECTORS, CliResult, CliRunner, run_cli


@pytest.fixture
def vectors() -> Path:
    return VECTORS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlockStore]:
    with BlockStore(tmp_path / "blocks", map_size=8 << 20) as opened:
        yield opened


@pytest.fixture
def mycel(tmp_path: Path) -> CliRunner:
    """Run the real ``mycel`` command in a subprocess against a scratch data dir."""
    data_dir = tmp_path / "mycel-data"

    def run(*args: str | os.PathLike[str], data_dir_override: Path | None = None, timeout: float = 120) -> CliResult:
        return run_cli(tmp_path, data_dir, *args, data_dir_override=data_dir_override, timeout=timeout)

    return run


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., list[Any]]]:
    """Start real node processes with ``cluster(n)``; all are stopped (and checked gone) after the test."""
    from node.cluster import cluster_down, cluster_up, process_alive, read_cluster_chain, read_cluster_file

    directories: list[Path] = []

    def start(count: int, regions: list[str] | None = None, timeout: float = 60.0, **options: Any) -> list[Any]:
        """``options`` go to cluster_up: chain=True (anvil + ledger), price, batch_size, batch_interval."""
        directory = tmp_path / f"cluster{len(directories)}"
        directories.append(directory)
        return cluster_up(count, directory, regions, timeout, **options)

    start.directories = directories  # type: ignore[attr-defined]
    yield start
    pids = []
    for directory in directories:
        with contextlib.suppress(Exception):
            pids += [node.pid for node in read_cluster_file(directory)]
            chain = read_cluster_chain(directory)
            pids += [chain.pid] if chain else []
        cluster_down(directory)
    leftovers = [pid for pid in pids if process_alive(pid)]
    assert not leftovers, f"node processes left running: {leftovers}"
