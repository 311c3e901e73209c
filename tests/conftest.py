"""Fixtures shared by every test package (helpers are in tests/support.py)."""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.blockstore import BlockStore
from tests.support import REPO_ROOT, VECTORS, CliResult, CliRunner, run_cli

# The packages every node process and `mycel` command imports (pyproject's packages.find).
PROJECT_PACKAGES = ("node", "agents", "storage", "contracts", "sdk")


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile the project once before any test, when PYTHONDONTWRITEBYTECODE is set.

    The suite starts ~100 node processes and ~300 `mycel` commands; with that variable set
    none of them writes the bytecode it compiles, so every one compiled the project's own
    modules from source again: ~0.8-1 s of CPU per node start (2.6-2.9 s instead of 3.4-4 s)
    and ~0.25 s per command (0.45 s instead of 0.7 s). Python still reads bytecode with the
    variable set, and checks it against each source's mtime, so a stale file is never used.
    The files go where Python's own would (``__pycache__``, ignored by git); the controller
    compiles, before the xdist workers start; an up-to-date tree costs a stat per file.
    """
    if sys.flags.dont_write_bytecode and not hasattr(config, "workerinput"):
        for package in PROJECT_PACKAGES:
            compileall.compile_dir(REPO_ROOT / package, quiet=1)


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


# -- scheduling: the slowest files first, each file on one worker -------------------------------
# make test runs `pytest -n 3 --dist loadfile --no-loadscope-reorder`: a file is one unit of
# work, so a module-scoped fixture (a planet, a chain) starts once, not on several workers, and
# the units go out heaviest first, so the workers end together instead of one starting
# a 30 s cluster file at the end. (xdist's own reorder, by number of tests, is off: it would
# put a file of 160 quick property tests first.) The weights come from DURATIONS (seconds per
# test, slow ones only), rewritten by a run with `--write-durations tests/durations.json`; a
# test it does not name counts as fast, so a stale table only costs balance, never a test.
DURATIONS = Path(__file__).parent / "durations.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--write-durations",
        metavar="PATH",
        help="write each test's seconds (setup + call + teardown, those of 1 s or more) as JSON to PATH",
    )


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _known_durations() -> dict[str, float]:
    try:
        table = json.loads(DURATIONS.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): float(v) for k, v in table.items()} if isinstance(table, dict) else {}


@pytest.hookimpl(trylast=True)  # after pytest groups tests by fixture: the file order is the last word
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    weight: dict[str, float] = defaultdict(float)
    for nodeid, seconds in _known_durations().items():
        weight[_file_of(nodeid)] += seconds
    # stable, by file only: every file's tests stay together and in the order pytest chose
    items.sort(key=lambda item: -weight.get(_file_of(item.nodeid), 0.0))


_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[report.nodeid] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.getoption("write_durations")
    if target and not hasattr(session.config, "workerinput"):  # the controller, which sees every report
        slow = {nodeid: round(s, 1) for nodeid, s in sorted(_seconds.items(), key=lambda kv: -kv[1]) if s >= 1.0}
        Path(target).write_text(json.dumps(slow, indent=0) + "\n")
