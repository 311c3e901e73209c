"""The sandbox holds the whole job to its limits, whatever the agent does to leave them:
processes counted even for root, memory counted across sessions and in memfds, no new
namespaces, no host unix sockets, and no sandbox that outlives the node or its job."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import nacl.signing
import pytest

from agents import receipt
from agents.executor import Executor, JobOutcome
from agents.manifest import Limits
from agents.outcome import Limit, Outcome, OutcomeKind
from agents.runtime.python import PythonRuntime
from storage.blockstore import BlockStore
from tests.agents.harness import FIXTURES, AgentHarness

PY = FIXTURES / "hostile-python"
REPO = Path(__file__).parents[2]


def _processes_with(token: str) -> list[int]:
    """Processes holding the agent's marker file open (forks inherit it; zombies hold none)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if any(token in os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")):
                found.append(int(entry))
        except OSError:
            continue
    return found


def _wait_until_gone(token: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling a condition (the processes' exit), with a deadline
    return left


def _needs_namespaces(harness: AgentHarness) -> None:
    """These bounds rest on the job's own PID and mount namespaces (unshare, as root or in a user namespace)."""
    runtime = harness.executor.runtimes["python"]
    assert isinstance(runtime, PythonRuntime)
    if "namespaces" not in runtime.active:
        pytest.skip(f"needs PID and mount namespaces: {runtime.layers.get('namespaces')}")


def _killed(outcome: JobOutcome, limit: Limit) -> None:
    assert (outcome.outcome.kind, outcome.outcome.limit) == (OutcomeKind.KILLED, limit), (
        outcome.status,
        outcome.logs[-500:],
    )
    assert receipt.verify(outcome.receipt).status == outcome.status


def test_processes_are_counted_for_root_too(harness: AgentHarness) -> None:
    _needs_namespaces(harness)
    token = f"fork-{uuid.uuid4().hex}"
    limits = Limits(cpu_seconds=10, memory_mib=512, wall_seconds=30, processes=2)
    _killed(harness.run(PY, "fork-20", "-", token, limits=limits), Limit.PROCESSES)
    assert _wait_until_gone(token, 5) == []


def test_no_agent_process_outlives_its_job(harness: AgentHarness) -> None:
    _needs_namespaces(harness)
    token = f"daemon-{uuid.uuid4().hex}"
    limits = Limits(cpu_seconds=10, memory_mib=256, wall_seconds=30, processes=4)
    outcome = harness.run(PY, "daemon", "-", token, limits=limits)
    assert outcome.outcome.is_ok, (outcome.status, outcome.logs)
    assert _wait_until_gone(token, 5) == []


@pytest.mark.parametrize("mode", ["setsid-memory", "memfd-memory"])
def test_memory_is_the_whole_jobs(harness: AgentHarness, mode: str) -> None:
    _needs_namespaces(harness)
    token = f"mem-{uuid.uuid4().hex}"
    limits = Limits(cpu_seconds=10, memory_mib=128, wall_seconds=30, processes=4)
    _killed(harness.run(PY, mode, "-", token, limits=limits), Limit.MEMORY)
    assert _wait_until_gone(token, 5) == []


def test_no_new_user_or_other_namespaces(harness: AgentHarness) -> None:
    limits = Limits(cpu_seconds=10, memory_mib=256, wall_seconds=30, processes=4)
    outcome = harness.run(PY, "new-namespaces", limits=limits)
    assert outcome.outcome == Outcome.failed("exit code 3"), outcome.logs
    assert b"SUCCEEDED" not in outcome.logs


def test_no_system_v_shared_memory(harness: AgentHarness) -> None:
    outcome = harness.run(PY, "sysv-shm")
    assert outcome.outcome == Outcome.failed("exit code 3"), outcome.logs
    assert b"SUCCEEDED" not in outcome.logs


def test_host_unix_sockets_are_unreachable(harness: AgentHarness, tmp_path: Path) -> None:
    _needs_namespaces(harness)
    path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    os.chmod(path, 0o777)
    server.setblocking(False)
    try:
        outcome = harness.run(PY, "unix-connect", str(path))
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert outcome.outcome == Outcome.failed("exit code 3"), outcome.logs
    assert b"SUCCEEDED" not in outcome.logs


_RUN_SLOW = """
import sys
from pathlib import Path
import nacl.signing
from agents.bundle import pack
from agents.executor import Executor
from agents.manifest import Limits
from agents.runtime.base import RunRequest
from agents.runtime.python import PythonRuntime
from storage.blockstore import BlockStore

root, warm, token = Path(sys.argv[1]), sys.argv[2] == "warm", sys.argv[3]
store = BlockStore(root / "blocks", map_size=16 << 20)
runtime = PythonRuntime(warm=warm)
executor = Executor(store, {"python": runtime}, nacl.signing.SigningKey.generate(), root)
bundle = pack(Path(sys.argv[4]), store)
limits = Limits(cpu_seconds=60, memory_mib=256, wall_seconds=120)
executor.run(RunRequest("job-slow", bundle, args=("sleep", "-", token), limits=limits))
"""


def test_a_killed_node_takes_its_sandboxes_with_it(python_runtime: PythonRuntime, tmp_path: Path) -> None:
    if "namespaces" not in python_runtime.active:
        pytest.skip(f"needs PID namespaces: {python_runtime.layers.get('namespaces')}")
    mode = "warm" if python_runtime.warm else "cold"
    token = f"orphan-{uuid.uuid4().hex}"
    (tmp_path / "node").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    node = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_RUN_SLOW), str(tmp_path / "node"), mode, token, str(PY)],
        env=env,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not _agent_started(token) and time.monotonic() < deadline:
            assert node.poll() is None, "the node process ended before its agent started"
            time.sleep(0.02)  # polling a condition (the agent's start), with a deadline
        assert _agent_started(token), "the agent never started"
        node.kill()
        node.wait()
        assert _wait_until_gone(token, 5) == []
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()


def _agent_started(token: str) -> bool:
    return bool(_processes_with(token))


def test_a_restarted_node_removes_the_workspaces_a_killed_one_left(tmp_path: Path) -> None:
    work = tmp_path / "work"
    left = work / "job-abc-123"
    (left / "out").mkdir(parents=True)
    (left / "out" / "result.bin").write_bytes(b"x")
    (left / "code").mkdir()
    (left / "code" / "main.py").write_text("")
    (left / "code").chmod(0o555)  # as a workspace leaves its bundle
    other = work / "not-a-job"
    other.mkdir()
    store = BlockStore(tmp_path / "blocks", map_size=16 << 20)
    try:
        assert Executor(store, {}, nacl.signing.SigningKey.generate(), work).sweep_work_dir() == 1
    finally:
        store.close()
    assert not left.exists() and other.exists()
