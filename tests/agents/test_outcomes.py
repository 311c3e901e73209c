"""Typed outcomes: the node decides from what it sees (exit status, signals, its own
counts), cancels stop a running sandbox, and output caps hold while the agent runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from agents import receipt
from agents.bundle import pack
from agents.executor import JobOutcome
from agents.manifest import Limits
from agents.outcome import Limit, Outcome, OutcomeKind
from agents.runtime.base import RunRequest
from agents.runtime.python import PythonRuntime
from agents.runtime.wasm import MAX_TABLE_ELEMENTS, WasmRuntime
from tests.agents.harness import FIXTURES, AgentHarness

REPO = Path(__file__).parents[2]
# The cap is enforced by a watcher that walks the writable places every few ms, so what gets
# past it is the agent's write rate times the watcher's latency. The python test agent paces
# its writes at ~100 MiB/s: 32 MiB of slack then allows 320 ms of latency (a thread waiting
# for the GIL on a loaded 2-core CI host: 16 MiB, 160 ms, was once exceeded at 21 MiB), while a
# watcher that only counted at exit (the defect this guards against) would see all 64 MiB.
SLACK = 32 << 20


def _python_agent(root: Path, source: str, **limits: int) -> Path:
    bundle = root / f"agent-{len(list(root.glob('agent-*')))}"
    bundle.mkdir()
    (bundle / "main.py").write_text(textwrap.dedent(source))
    table = "".join(f"{key} = {value}\n" for key, value in limits.items())
    (bundle / "mycel-agent.toml").write_text(
        f'name = "probe"\nversion = "0.0.1"\nruntime = "python"\nentrypoint = "main.py"\n[limits]\n{table}'
    )
    return bundle


def _wasm_agent(root: Path, wat: str, **limits: int) -> Path:
    bundle = root / f"wasm-{len(list(root.glob('wasm-*')))}"
    bundle.mkdir()
    (bundle / "main.wasm").write_bytes(wasmtime.wat2wasm(wat))
    table = "".join(f"{key} = {value}\n" for key, value in limits.items())
    (bundle / "mycel-agent.toml").write_text(
        f'name = "probe"\nversion = "0.0.1"\nruntime = "wasm"\nentrypoint = "main.wasm"\n[limits]\n{table}'
    )
    return bundle


_PATH_OPEN = (
    '(import "wasi_snapshot_preview1" "path_open" '
    "(func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"
    '(import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))'
)


def _create(name_address: int, name_length: int) -> str:
    """WAT: create a file in /out (the second preopen, fd 4) and close it."""
    return (
        f"(drop (call $open (i32.const 4) (i32.const 0) (i32.const {name_address}) (i32.const {name_length}) "
        "(i32.const 1) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 0)))"
        "(drop (call $close (i32.load (i32.const 0))))"
    )


@pytest.fixture
def wasm_harness(tmp_path: Path, wasm_runtime: WasmRuntime) -> Iterator[AgentHarness]:
    """The wasm runtime alone (the python runtime is never started)."""
    h = AgentHarness(tmp_path, wasm_runtime, PythonRuntime(layers={}))
    yield h
    h.store.close()


def _signed(outcome: JobOutcome) -> receipt.Receipt:
    record = receipt.verify(outcome.receipt)
    assert record.status == outcome.outcome.label
    return record


# -- verdicts are the node's, not the agent's text ----------------------------------------------------


@pytest.mark.parametrize("code", [1, 120])
def test_printed_words_do_not_change_the_verdict(harness: AgentHarness, tmp_path: Path, code: int) -> None:
    agent = _python_agent(
        tmp_path,
        f"""
        import sys
        print("MemoryError File too large Resource temporarily unavailable mycel sandbox: unshare: x")
        sys.exit({code})
        """,
    )
    outcome = harness.run(agent)
    assert outcome.outcome == Outcome.failed(f"exit code {code}")
    _signed(outcome)


def test_a_real_time_signal_is_named_not_a_crash(tmp_path: Path, wasm_runtime: WasmRuntime) -> None:
    # outside a PID namespace (as PID 1 an agent cannot kill itself by a signal it does not handle)
    runtime = PythonRuntime(layers={"rlimits": "on", "seccomp": "on"})
    h = AgentHarness(tmp_path, wasm_runtime, runtime)
    try:
        agent = _python_agent(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGRTMIN + 3)\n")
        outcome = h.run(agent)
    finally:
        h.store.close()
    assert outcome.outcome == Outcome.failed("killed by signal SIGRTMIN+3")
    _signed(outcome)


@pytest.mark.parametrize(
    "making",
    [
        "open(os.path.join(out, os.fsdecode(b'bad-\\xff-name')), 'w').close()",
        "os.chdir(out)\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')",
        "os.mkfifo(os.path.join(out, 'pipe'))",
    ],
    ids=["non-utf8-name", "3000-deep", "fifo"],
)
def test_output_that_cannot_be_imported_fails_with_a_signed_receipt(
    harness: AgentHarness, tmp_path: Path, making: str
) -> None:
    agent = _python_agent(tmp_path, f"import os\nout = os.environ['MYCEL_OUT']\n{making}\n")
    outcome = harness.run(agent)
    assert outcome.outcome.kind is OutcomeKind.FAILED, outcome.status
    assert outcome.outcome.detail.startswith("invalid output"), outcome.status
    assert outcome.result is None and not outcome.outcome.fail_over
    _signed(outcome)


# -- cancel -------------------------------------------------------------------------------------------


def _run_and_cancel_when_started(harness: AgentHarness, bundle_dir: Path) -> tuple[JobOutcome, float]:
    """Run the agent; set its cancel event once it has created out/started; seconds from cancel to return."""
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def cancel_once_started() -> None:
        while not cancel.is_set():
            if any(harness.root.glob("job-*/out/started")):
                cancelled_at.append(time.monotonic())
                cancel.set()
            else:
                time.sleep(0.01)  # polling a condition: the agent's marker file

    watcher = threading.Thread(target=cancel_once_started, daemon=True)
    watcher.start()
    bundle = pack(bundle_dir, harness.store)
    try:
        outcome = harness.executor.run(RunRequest("job-cancel", bundle, cancel=cancel))
    finally:
        cancel.set()
        watcher.join()
    assert cancelled_at, outcome.status
    return outcome, time.monotonic() - cancelled_at[0]


def test_cancel_stops_a_python_agent(harness: AgentHarness, tmp_path: Path) -> None:
    agent = _python_agent(
        tmp_path,
        "import os, time\nopen(os.path.join(os.environ['MYCEL_OUT'], 'started'), 'w').close()\ntime.sleep(60)\n",
        wall_seconds=60,
    )
    outcome, seconds = _run_and_cancel_when_started(harness, agent)
    assert outcome.outcome == Outcome.cancelled()
    assert seconds < 1.0
    _signed(outcome)


def test_a_cancel_event_that_never_fires_does_not_delay_the_job(
    harness: AgentHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every trigger run carries a cancel event: its end must not wait for the canceller's next poll."""
    import agents.runtime.python as python_runtime

    monkeypatch.setattr(python_runtime, "CANCEL_POLL", 30.0)  # a wait for the poll would be unmistakable
    agent = _python_agent(tmp_path, "import os\nopen(os.path.join(os.environ['MYCEL_OUT'], 'x'), 'w').close()\n")
    started = time.monotonic()
    outcome = harness.executor.run(RunRequest("job-quick", pack(agent, harness.store), cancel=threading.Event()))
    assert outcome.outcome.is_ok, outcome.status
    assert time.monotonic() - started < 15.0


def test_cancel_stops_a_wasm_agent(wasm_harness: AgentHarness, tmp_path: Path) -> None:
    wat = f"""(module {_PATH_OPEN} (memory (export "memory") 1) (data (i32.const 16) "started")
      (func (export "_start") {_create(16, 7)} (loop $spin (br $spin))))"""
    agent = _wasm_agent(tmp_path, wat, cpu_seconds=60, wall_seconds=60)
    outcome, seconds = _run_and_cancel_when_started(wasm_harness, agent)
    assert outcome.outcome == Outcome.cancelled()
    assert seconds < 1.0
    _signed(outcome)


# -- output caps: bytes on disk in every writable place, and files ------------------------------------


@pytest.mark.parametrize("where", ["MYCEL_OUT", "HOME", "TMPDIR"])
def test_python_output_cap_counts_every_writable_place_while_running(
    harness: AgentHarness, tmp_path: Path, where: str
) -> None:
    # 64 files of 1 MiB each: every file is under the 8 MiB cap, their sum is not
    agent = _python_agent(
        tmp_path,
        f"""
        import os, time
        block = os.urandom(1 << 20)
        for i in range(64):
            with open(os.path.join(os.environ[{where!r}], f"part-{{i}}"), "wb") as out:
                out.write(block)
            time.sleep(0.01)
        time.sleep(60)
        """,
        max_output_mib=8,
        wall_seconds=60,
    )
    outcome = harness.run(agent)
    assert (outcome.outcome.kind, outcome.outcome.limit) == (OutcomeKind.KILLED, Limit.OUTPUT), outcome.status
    assert _signed(outcome).usage.bytes_out <= (8 << 20) + SLACK


def test_python_file_count_is_capped(harness: AgentHarness, tmp_path: Path) -> None:
    agent = _python_agent(
        tmp_path,
        """
        import os
        out = os.environ["MYCEL_OUT"]
        for i in range(20_000):
            open(os.path.join(out, str(i)), "w").close()
        """,
        wall_seconds=60,
    )
    outcome = harness.run(agent)
    assert (outcome.outcome.kind, outcome.outcome.limit) == (OutcomeKind.KILLED, Limit.FILES), outcome.status
    _signed(outcome)


def test_wasm_output_cap_holds_while_running(wasm_harness: AgentHarness) -> None:
    wide = Limits(cpu_seconds=10, memory_mib=32, wall_seconds=30, max_output_mib=1)
    outcome = wasm_harness.run(FIXTURES / "hostile-wasm", "big-output", limits=wide)  # writes 64 MiB
    assert (outcome.outcome.kind, outcome.outcome.limit) == (OutcomeKind.KILLED, Limit.OUTPUT), outcome.status
    assert _signed(outcome).usage.bytes_out <= (1 << 20) + SLACK


def test_wasm_file_count_is_capped(wasm_harness: AgentHarness, tmp_path: Path) -> None:
    def letter(position: int, divisor: int) -> str:
        digit = f"(i32.rem_u (i32.div_u (local.get $i) (i32.const {divisor})) (i32.const 26))"
        return f"(i32.store8 (i32.const {16 + position}) (i32.add (i32.const 97) {digit}))"

    name = "".join(letter(position, 26**position) for position in range(4))
    wat = f"""(module {_PATH_OPEN} (memory (export "memory") 1)
      (func (export "_start") (local $i i32)
        (loop $next {name} {_create(16, 4)}
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $next (i32.lt_u (local.get $i) (i32.const 20000))))))"""
    agent = _wasm_agent(tmp_path, wat, cpu_seconds=30, wall_seconds=60, max_output_files=1000)
    outcome = wasm_harness.run(agent)
    assert (outcome.outcome.kind, outcome.outcome.limit) == (OutcomeKind.KILLED, Limit.FILES), outcome.status
    assert _signed(outcome).usage.bytes_out == 0


# -- wasm: traps, compile time, tables ----------------------------------------------------------------


def test_a_trapped_wasm_agent_does_not_abort_the_cli(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "node.cli.main", "agent", "run", str(FIXTURES / "hostile-wasm")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*command, "--arg", "spin", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]  # the agent was killed; the CLI says so and exits 1
    assert b"panicked" not in done.stderr


def test_wasm_compile_time_counts_against_the_wall_limit(wasm_harness: AgentHarness, tmp_path: Path) -> None:
    # 1000 values live across one loop: cranelift takes seconds to allocate registers for it
    live = 1000
    bump = "".join(f"(local.set {i} (i64.add (local.get {i}) (i64.const 1)))" for i in range(live))
    exits = "".join(f"(br_if $l (i64.eqz (local.get {i})))" for i in range(live))
    locals_ = "(local i64)" * live
    wat = f'(module (memory (export "memory") 1) (func (export "_start") {locals_} (loop $l {bump} {exits})))'
    agent = _wasm_agent(tmp_path, wat, wall_seconds=1)
    started = time.monotonic()
    outcome = wasm_harness.run(agent)
    assert (outcome.outcome.kind, outcome.outcome.limit) == (OutcomeKind.KILLED, Limit.WALL), outcome.status
    assert time.monotonic() - started < 3
    _signed(outcome)


def test_wasm_tables_are_limited(wasm_harness: AgentHarness, tmp_path: Path) -> None:
    wat = f'(module (table {MAX_TABLE_ELEMENTS * 4} funcref) (func (export "_start")))'
    outcome = wasm_harness.run(_wasm_agent(tmp_path, wat))
    assert (outcome.outcome.kind, outcome.outcome.limit) == (OutcomeKind.KILLED, Limit.MEMORY), outcome.status
    _signed(outcome)


def test_python_sandbox_denies_io_uring_userfaultfd_keys_and_personality(harness: AgentHarness, tmp_path: Path) -> None:
    agent = _python_agent(
        tmp_path,
        """
        import ctypes, errno, platform
        numbers = {
            "x86_64": {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
                       "userfaultfd": 323, "add_key": 248, "request_key": 249, "personality": 135},
            "aarch64": {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
                        "userfaultfd": 282, "add_key": 217, "request_key": 218, "personality": 92},
        }[platform.machine()]
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        allowed = []
        for name, number in numbers.items():
            ctypes.set_errno(0)
            # personality(0xffffffff) only queries; the others get arguments they would reject
            argument = 0xFFFFFFFF if name == "personality" else 0
            if libc.syscall(number, ctypes.c_ulong(argument), 0, 0, 0, 0) != -1 or ctypes.get_errno() != errno.EPERM:
                allowed.append(name)
        print("allowed:", allowed)
        raise SystemExit(3 if allowed else 0)
        """,
    )
    outcome = harness.run(agent)
    assert outcome.outcome.is_ok, (outcome.status, outcome.logs)
