"""The ``python`` runtime: the agent runs in a locked-down child process.

Layers, each used where this host allows it (``layers`` says which are active, and
``mycel node doctor`` reports them):

* ``namespaces``: ``unshare`` gives the child its own network (no interfaces), PID,
  IPC and UTS namespaces, so it cannot reach the network or see or signal host processes.
* ``rlimits``: CPU seconds, address space, file size, processes, open files.
* ``uid``: when the node runs as root and the interpreter is readable by it, the child
  becomes ``nobody``; otherwise, as root, it drops every capability instead.
* ``landlock``: the file system is an allow-list: the interpreter and the node's fixed
  agent environment read-only, the bundle and inputs read-only, ``/out`` and a scratch
  dir writable; nothing else (not the node key, not the data dir). Also no TCP and no
  signals outside the sandbox (Landlock ABI 4 and 6).
* ``seccomp``: no network sockets (only AF_UNIX), no ptrace, bpf, mount, namespaces.

The parent enforces wall-clock time and resident memory by watching the child, caps
captured logs, and kills the whole process group on any breach.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import IO

from agents.manifest import Limits
from agents.runtime.base import LogBuffer, RawRun, RunRequest, Workspace
from agents.runtime.sandbox import landlock, seccomp
from agents.runtime.sandbox.procfs import session_rss

LAUNCHER = Path(__file__).with_name("sandbox") / "launcher.py"
WORKER = Path(__file__).with_name("sandbox") / "worker.py"
SANDBOX_UID = 65534
ADDRESS_SPACE_ALLOWANCE = 2 << 30  # interpreter + numpy/sklearn mappings; RSS is what is enforced
POLL = 0.01
EXIT_SANDBOX_FAILED = 120


def _probe(args: list[str]) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def unshare_command() -> list[str]:
    """Own network, PID, IPC and UTS namespaces; without root, inside a user namespace."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return ["unshare", *user, "--net", "--pid", "--fork", "--ipc", "--uts", "--kill-child"]


def detect_layers() -> dict[str, str]:
    """Which layers this host supports, with a reason for each one that is off."""
    layers: dict[str, str] = {"rlimits": "on"}
    usable = shutil.which("unshare") and _probe([*unshare_command(), "true"])
    layers["namespaces"] = "on" if usable else "off: unshare not permitted here"
    abi = landlock.abi_version()
    layers["landlock"] = f"on (ABI {abi})" if abi else "off: kernel has no Landlock"
    layers["seccomp"] = "on" if seccomp.supported() else f"off: no filter for {platform.machine()}"
    if os.geteuid() != 0:
        layers["uid"] = "off: node is not root (agents run as the node's user, confined by the other layers)"
    else:
        drop = f"import os; os.setgroups([]); os.setgid({SANDBOX_UID}); os.setuid({SANDBOX_UID})"
        can = _probe([sys.executable, "-I", "-c", f"{drop}; import pkgutil, csv, numpy"])
        layers["uid"] = (
            "on" if can else "off: the interpreter is not readable by uid 65534 (capabilities dropped instead)"
        )
    return layers


class PythonRuntime:
    """Cold start (a new interpreter per job) by default; ``warm=True`` forks each job
    from a pre-started worker that has the agent environment imported already."""

    name = "python"

    def __init__(self, layers: dict[str, str] | None = None, *, warm: bool = False) -> None:
        self.version = f"cpython-{platform.python_version()}"
        self.layers = layers if layers is not None else detect_layers()
        self.active = [name for name, state in self.layers.items() if state.startswith("on")]
        self.warm = warm
        self._worker: subprocess.Popen[str] | None = None
        self._worker_lock = threading.Lock()

    def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            _kill_group(worker.pid)
            worker.wait()

    def _start_worker(self) -> subprocess.Popen[str]:
        prefix = self._namespace_prefix()
        if prefix:  # the worker watches its children through /proc: give it its own
            prefix = [*prefix[:-1], "--mount", "--mount-proc", prefix[-1]]
        worker = subprocess.Popen(
            [*prefix, sys.executable, "-I", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        )
        assert worker.stdout is not None
        if "ready" not in json.loads(worker.stdout.readline() or "{}"):
            _kill_group(worker.pid)
            raise RuntimeError("the python warm worker did not start")
        return worker

    def _run_warm(self, config: dict[str, object], limits: Limits) -> tuple[str | None, int, float, int, float]:
        with self._worker_lock:
            if self._worker is None or self._worker.poll() is not None:
                self._worker = self._start_worker()
            worker = self._worker
            assert worker.stdin is not None and worker.stdout is not None
            job = {**config, "wall_seconds": limits.wall_seconds, "memory_bytes": limits.memory_mib << 20}
            worker.stdin.write(json.dumps(job) + "\n")
            worker.stdin.flush()
            line = worker.stdout.readline()
        if not line:
            self._worker = None
            return "failed: the warm worker died", -1, 0.0, 0, 0.0
        answer = json.loads(line)
        return (
            answer["verdict"],
            answer["exit_code"],
            answer["cpu_seconds"],
            answer["peak_memory_bytes"],
            answer["wall_seconds"],
        )

    def _namespace_prefix(self) -> list[str]:
        return unshare_command() if "namespaces" in self.active else []

    def _read_only_paths(self, workspace: Workspace) -> list[str]:
        paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"]}
        paths |= {"/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache", "/etc/localtime", "/dev/null", "/dev/urandom"}
        paths |= {"/proc/self", "/sys/devices/system/cpu", "/proc/cpuinfo", "/proc/meminfo"}
        paths |= {str(workspace.code), str(workspace.inputs)}
        return sorted(paths)

    def run(self, request: RunRequest, workspace: Workspace) -> RawRun:
        limits = request.effective_limits
        scratch = workspace.root / "tmp"
        scratch.mkdir(mode=0o777, exist_ok=True)
        os.chmod(scratch, 0o777)
        env = {
            "MYCEL_IN": str(workspace.inputs),
            "MYCEL_OUT": str(workspace.out),
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **request.env,
        }
        config = {
            "entrypoint": str(workspace.code / request.bundle.manifest.entrypoint),
            "code": str(workspace.code),
            "args": list(request.args),
            "env": env,
            "cwd": str(scratch),
            "uid": SANDBOX_UID,
            "layers": self.active,
            "read_only": self._read_only_paths(workspace),
            "read_write": [str(workspace.out), str(scratch)],
            "limits": {
                "cpu_seconds": limits.cpu_seconds,
                "address_space_bytes": (limits.memory_mib << 20) + ADDRESS_SPACE_ALLOWANCE,
                "max_output_bytes": limits.max_output_mib << 20,
                "processes": limits.processes,
            },
        }
        if self.warm:
            log_file = workspace.root / "agent.log"
            config["log_file"] = str(log_file)
            warm_verdict, warm_exit, warm_cpu, warm_peak, warm_wall = self._run_warm(config, limits)
            warm_logs = LogBuffer()
            if log_file.exists():
                with open(log_file, "rb") as stream:
                    warm_logs.write(stream.read(warm_logs.cap + 1))
            warm_status = warm_verdict or _classify(warm_exit, bytes(warm_logs.data), warm_cpu, limits.cpu_seconds)
            return RawRun(
                warm_status, warm_exit, bytes(warm_logs.data), warm_logs.truncated, warm_cpu, warm_peak, warm_wall
            )
        read_end, write_end = os.pipe()
        command = [*self._namespace_prefix(), sys.executable, "-I", str(LAUNCHER), str(read_end)]
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(read_end,),
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        os.close(read_end)
        with os.fdopen(write_end, "w") as pipe:
            json.dump(config, pipe)
        logs = LogBuffer()
        assert proc.stdout is not None
        reader = threading.Thread(target=_drain, args=(proc.stdout, logs), daemon=True)
        reader.start()
        verdict, peak_rss = self._watch(proc, limits.wall_seconds, limits.memory_mib << 20)
        _, wait_status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        reader.join(5)
        cpu = usage.ru_utime + usage.ru_stime
        if b"unshare: " in logs.data:  # unshare's own note when the agent died by a signal
            lines = logs.data.splitlines(keepends=True)
            logs.data = bytearray(b"".join(line for line in lines if not line.startswith(b"unshare: ")))
        peak = max(peak_rss, usage.ru_maxrss * 1024)
        exit_code = proc.returncode
        status = verdict or _classify(exit_code, bytes(logs.data), cpu, limits.cpu_seconds)
        return RawRun(status, exit_code, bytes(logs.data), logs.truncated, cpu, peak, time.perf_counter() - started)

    def _watch(self, proc: subprocess.Popen[bytes], wall: float, memory: int) -> tuple[str | None, int]:
        deadline = time.monotonic() + wall
        peak = 0
        while True:
            try:
                exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return None, peak
            if exited is not None:  # left for wait4 to reap, with its rusage
                return None, peak
            rss = session_rss(proc.pid)
            peak = max(peak, rss)
            if rss > memory:
                _kill_group(proc.pid)
                return "killed: memory limit", peak
            if time.monotonic() > deadline:
                _kill_group(proc.pid)
                return "killed: wall-clock limit", peak
            time.sleep(POLL)


def _drain(stream: IO[bytes], logs: LogBuffer) -> None:
    while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
        logs.write(chunk)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _classify(exit_code: int, logs: bytes, cpu: float, cpu_limit: int) -> str:
    if exit_code == 0:
        return "ok"
    if exit_code == EXIT_SANDBOX_FAILED and b"mycel sandbox:" in logs:
        return "failed: sandbox could not be set up"
    if cpu >= cpu_limit - 0.5:  # RLIMIT_CPU fired (unshare may report it as its own exit 1)
        return "killed: cpu limit"
    if b"MemoryError" in logs:
        return "killed: memory limit"
    if b"File too large" in logs or exit_code == -signal.SIGXFSZ:
        return "killed: output limit"
    if b"Resource temporarily unavailable" in logs:
        return "killed: process limit"
    if exit_code < 0:
        return f"killed: signal {signal.Signals(-exit_code).name}"
    return f"failed: exit code {exit_code}"
