"""Hostile agents: every attempt is blocked or killed, with a clear status, and the node lives on."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from agents import receipt
from agents.executor import JobOutcome
from agents.manifest import Limits
from agents.outcome import Limit, Outcome, OutcomeKind
from tests.agents.harness import FIXTURES, AgentHarness

PY = FIXTURES / "hostile-python"
WASM = FIXTURES / "hostile-wasm"


def _blocked(outcome: JobOutcome, harness: AgentHarness) -> None:
    assert outcome.outcome == Outcome.failed("exit code 3"), (outcome.status, outcome.logs)
    assert b"blocked" in outcome.logs and b"SUCCEEDED" not in outcome.logs
    assert receipt.verify(outcome.receipt).status == outcome.status


def _killed(outcome: JobOutcome, limit: Limit) -> None:
    assert (outcome.outcome.kind, outcome.outcome.limit) == (OutcomeKind.KILLED, limit), (
        outcome.status,
        outcome.logs[-500:],
    )
    assert outcome.result is None
    assert receipt.verify(outcome.receipt).status == outcome.status


@pytest.mark.parametrize("target", ["/etc/passwd", "KEY", "DATA_DIR_BLOCKS"])
def test_python_cannot_read_host_files_or_the_node_key(harness: AgentHarness, target: str) -> None:
    path = {"KEY": str(harness.key_file), "DATA_DIR_BLOCKS": str(harness.data_dir / "blocks" / "data.mdb")}.get(
        target, target
    )
    _blocked(harness.run(PY, "read", path), harness)


def test_python_cannot_list_the_data_dir(harness: AgentHarness) -> None:
    _blocked(harness.run(PY, "list", str(harness.data_dir)), harness)


def test_python_cannot_escape_in_by_dotdot_or_symlink(harness: AgentHarness, tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("x")
    inputs = {"data": harness.put(tmp_path / "input.txt")}
    _blocked(harness.run(PY, "escape-in", inputs=inputs), harness)
    _blocked(harness.run(PY, "symlink-escape", str(harness.key_file)), harness)


def test_python_cannot_write_outside_out(harness: AgentHarness, tmp_path: Path) -> None:
    target = tmp_path / "planted.txt"
    _blocked(harness.run(PY, "write", str(target)), harness)
    assert not target.exists()
    (tmp_path / "input.txt").write_text("x")
    _blocked(harness.run(PY, "write", "IN", inputs={"data": harness.put(tmp_path / "input.txt")}), harness)


def test_python_has_no_network(harness: AgentHarness) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        _blocked(harness.run(PY, "tcp", str(server.getsockname()[1])), harness)
    finally:
        thread.join()
        server.close()
    assert accepted == []
    _blocked(harness.run(PY, "udp"), harness)
    _blocked(harness.run(PY, "dns"), harness)


def test_python_cannot_signal_the_node(harness: AgentHarness) -> None:
    _blocked(harness.run(PY, "kill", str(os.getpid())), harness)


# a generous wall clock where the wall is not what the case is about: two shared cores
# can take longer than the fixture's 4 s of wall time to burn 2 s of CPU
_SLOW_WALL = Limits(cpu_seconds=2, memory_mib=128, wall_seconds=30, max_output_mib=8)


@pytest.mark.parametrize(
    ("mode", "limit"),
    [
        ("memory", Limit.MEMORY),
        ("spin", Limit.CPU),
        ("sleep", Limit.WALL),
        ("big-output", Limit.OUTPUT),
        ("fork-bomb", Limit.PROCESSES),
    ],
)
def test_python_limits_kill_with_a_clear_status(harness: AgentHarness, mode: str, limit: Limit) -> None:
    _killed(harness.run(PY, mode, limits=None if mode == "sleep" else _SLOW_WALL), limit)


def test_python_log_flood_is_capped(harness: AgentHarness) -> None:
    outcome = harness.run(PY, "flood-stdout")
    assert len(outcome.logs) == 1 << 20 and outcome.logs_truncated


@pytest.mark.parametrize("mode", ["read-passwd", "escape-in", "read-key", "write-in", "write-outside"])
def test_wasm_sees_nothing_but_in_and_out(harness: AgentHarness, tmp_path: Path, mode: str) -> None:
    (tmp_path / "input.txt").write_text("x")
    outcome = harness.run(WASM, mode, str(harness.key_file), inputs={"data": harness.put(tmp_path / "input.txt")})
    assert outcome.outcome == Outcome.failed("exit code 3"), outcome.logs
    assert b"blocked" in outcome.logs and b"OPENED" not in outcome.logs


_WASM_LIMITS = [("memory", Limit.MEMORY), ("spin", Limit.CPU), ("big-output", Limit.OUTPUT)]


@pytest.mark.parametrize(("mode", "limit"), _WASM_LIMITS)
def test_wasm_limits_kill_with_a_clear_status(harness: AgentHarness, mode: str, limit: Limit) -> None:
    wide = Limits(cpu_seconds=2, memory_mib=32, wall_seconds=30, max_output_mib=1)
    _killed(harness.run(WASM, mode, limits=wide), limit)


def test_wasm_wall_clock_limit_and_no_sleeping_past_it(harness: AgentHarness) -> None:
    generous_cpu = Limits(cpu_seconds=60, memory_mib=32, wall_seconds=1, max_output_mib=1)
    started = time.monotonic()
    _killed(harness.run(WASM, "spin", limits=generous_cpu), Limit.WALL)
    assert time.monotonic() - started < 5
    # a host sleep could not be interrupted, so WASI poll_oneoff is refused (ENOTSUP)
    assert harness.run(WASM, "sleep", limits=generous_cpu).outcome.is_ok


def test_wasm_log_flood_is_capped(harness: AgentHarness) -> None:
    outcome = harness.run(WASM, "flood-stdout")
    assert outcome.outcome in (Outcome.ok(), Outcome.killed(Limit.WALL))
    assert len(outcome.logs) == 1 << 20 and outcome.logs_truncated


def test_the_node_keeps_working_after_hostile_runs(harness: AgentHarness) -> None:
    harness.run(PY, "spin")
    harness.run(WASM, "memory")
    outcome = harness.run(PY, "list", os.environ.get("MYCEL_OUT", "/nonexistent"))
    assert outcome.outcome.kind in (OutcomeKind.FAILED, OutcomeKind.OK)
    assert harness.store.stats().blocks > 0 and list(harness.store.verify_all()) == []
