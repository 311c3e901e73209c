"""The ``python`` runtime: the agent runs in a locked-down child process.

Layers, each used where this host allows it (``layers`` says which are active, and
``mycel node doctor`` reports them):

* ``namespaces``: ``unshare`` gives the child its own network (no interfaces), PID,
  IPC and UTS namespaces, so it cannot reach the network or see or signal host processes,
  and the launcher gives it its own mount namespace in which only the runtime, the bundle,
  the inputs, ``/out`` and scratch exist (no host unix socket has a name there).
* ``rlimits``: CPU seconds, address space, file size, processes, open files.
* ``uid``: when the node runs as root and the interpreter is readable by it, the child
  becomes ``nobody``; otherwise, as root, it drops every capability instead.
* ``landlock``: the file system is an allow-list: the interpreter and the node's fixed
  agent environment read-only, the bundle and inputs read-only, ``/out`` and a scratch
  dir writable; nothing else (not the node key, not the data dir). Also no TCP and no
  signals outside the sandbox (Landlock ABI 4 and 6).
* ``seccomp``: no network sockets (only AF_UNIX), no ptrace, bpf, mount, namespaces.

The parent enforces wall-clock time, resident memory, the output caps and cancellation
by watching the child, caps captured logs, and kills the whole process group on any
breach. The outcome is decided from what the node itself sees (its watcher's verdict,
the exit status, rusage, the setup channel) and never from the agent's output: an agent
can print anything, including the words a classifier would look for.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agents.manifest import Limits
from agents.outcome import Limit, Outcome
from agents.runtime.base import MAX_OUTPUT_DEPTH, LogBuffer, OutputWatch, RawRun, RunRequest, Staging, Workspace
from agents.runtime.sandbox import landlock, seccomp
from agents.runtime.sandbox.procfs import job_usage, kill_all

LAUNCHER = Path(__file__).with_name("sandbox") / "launcher.py"
WORKER = Path(__file__).with_name("sandbox") / "worker.py"
SANDBOX_UID = 65534
ADDRESS_SPACE_ALLOWANCE = 2 << 30  # interpreter + numpy/sklearn mappings; RSS is what is enforced
POLL = 0.002  # output walks; bytes past the cap are about the agent's write rate x POLL
RSS_POLL = 0.01  # resident memory, wall clock and cancel (each RSS read walks every /proc stat)
CANCEL_POLL = 0.05  # how often a warm job's canceller looks at the event
CPU_SLACK = 0.5  # RLIMIT_CPU fires at the soft limit; rusage lands just under or over it


_PDEATHSIG = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []


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

    @property
    def input_staging(self) -> Staging:
        """Cached inputs are bind-mounted read-only in the sandbox's own mount namespace; without
        one they are copied: a hard link would hand the agent the cache's own inode to chmod."""
        return Staging.MOUNT if "namespaces" in self.active else Staging.COPY

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

    def _run_warm(self, config: dict[str, object], limits: Limits, cancel: threading.Event | None) -> _Finished:
        """Hand the job to the warm worker; a cancel is sent on its stdin while the job runs."""
        with self._worker_lock:
            if self._worker is None or self._worker.poll() is not None:
                self._worker = self._start_worker()
            worker = self._worker
            assert worker.stdin is not None and worker.stdout is not None
            job = {**config, "wall_seconds": limits.wall_seconds, "memory_bytes": limits.memory_mib << 20}
            worker.stdin.write(json.dumps(job) + "\n")
            worker.stdin.flush()
            done = threading.Event()
            canceller = None
            if cancel is not None:
                canceller = threading.Thread(target=_send_cancel, args=(worker, cancel, done), daemon=True)
                canceller.start()
            try:
                line = worker.stdout.readline()
            finally:
                done.set()
                if canceller is not None:
                    canceller.join()
        if not line:
            self._worker = None
            return _Finished(Outcome.node_error("the python warm worker died"), None, 0.0, 0, 0.0, None)
        answer = json.loads(line)
        verdict = answer["verdict"]
        return _Finished(
            _verdict(verdict) if verdict else None,
            answer["exit_code"],
            answer["cpu_seconds"],
            answer["peak_memory_bytes"],
            answer["wall_seconds"],
            answer["sandbox_error"],
        )

    def _namespace_prefix(self) -> list[str]:
        return unshare_command() if "namespaces" in self.active else []

    def _launch_prefix(self) -> list[str]:
        """The namespace prefix, led by ``setpriv --pdeathsig``: a sandbox dies with the
        node (even a SIGKILLed one), since unshare's ``--kill-child`` then takes the
        namespace's init, and with it every process in the namespace.

        The kernel sends the signal when the *thread* that started the process ends: right
        for a cold job, started and waited for by one thread, but not for the warm worker,
        which any job's thread may start and which outlives it. The worker has no prefix
        of this kind: it stops at EOF on its stdin, which the node's death closes, and as
        init of its PID namespace takes every process there with it."""
        return [*_PDEATHSIG, *self._namespace_prefix()]

    def _read_only_paths(self, workspace: Workspace) -> list[str]:
        paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"]}
        paths |= {"/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache", "/etc/localtime", "/dev/null", "/dev/urandom"}
        paths |= {"/proc/self", "/sys/devices/system/cpu", "/proc/cpuinfo", "/proc/meminfo"}
        paths |= {str(workspace.code), str(workspace.inputs)}
        return sorted(paths)

    def run(self, request: RunRequest, workspace: Workspace) -> RawRun:
        """Run the agent; a bundle with its own wheels starts cold: the warm worker has the node's
        numpy (and more) imported already, which would shadow the bundle's copy."""
        limits = request.effective_limits
        scratch = workspace.scratch
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
        read_only = self._read_only_paths(workspace)
        if request.site is not None:
            env["PYTHONPATH"] = str(request.site)  # for the agent's own child interpreters
            read_only = sorted({*read_only, str(request.site)})
        config: dict[str, object] = {
            "entrypoint": str(workspace.code / request.bundle.manifest.entrypoint),
            "code": str(workspace.code),
            "args": list(request.args),
            "env": env,
            "cwd": str(scratch),
            "uid": SANDBOX_UID,
            "layers": self.active,
            "read_only": read_only,
            "python_path": [str(request.site)] if request.site is not None else [],
            "read_write": [str(workspace.out), str(scratch)],
            "limits": {
                "cpu_seconds": limits.cpu_seconds,
                "address_space_bytes": (limits.memory_mib << 20) + ADDRESS_SPACE_ALLOWANCE,
                # one byte over the cap: a file that reaches it is over it, which the
                # node's own count then sees (Python ignores SIGXFSZ and gets EFBIG)
                "max_output_bytes": (limits.max_output_mib << 20) + 1,
                "processes": limits.processes,
                "output_cap_bytes": limits.max_output_mib << 20,
                "max_output_files": limits.max_output_files,
            },
        }
        if "namespaces" in self.active:
            mount_root = workspace.root / "root"
            mount_root.mkdir(exist_ok=True)
            config["mount_root"] = str(mount_root)
            config["binds"] = [[str(source), str(target)] for source, target in workspace.binds]
        elif workspace.binds:  # the executor asks for MOUNT staging only where namespaces are on
            raise RuntimeError("cached inputs need the sandbox's mount namespace to be mounted read-only")
        if self.warm and request.site is None:
            log_file = workspace.root / "agent.log"
            config["log_file"] = str(log_file)
            finished = self._run_warm(config, limits, request.cancel)
            logs = LogBuffer()
            if log_file.exists():
                with open(log_file, "rb") as stream:
                    logs.write(stream.read(logs.cap + 1))
        else:
            finished, logs = self._run_cold(config, limits, request, workspace)
        outcome = finished.verdict or _classify(finished, limits)
        return RawRun(
            outcome,
            finished.exit_code,
            bytes(logs.data),
            logs.truncated,
            finished.cpu_seconds,
            finished.peak_memory_bytes,
            finished.wall_seconds,
        )

    def _run_cold(
        self, config: dict[str, object], limits: Limits, request: RunRequest, workspace: Workspace
    ) -> tuple[_Finished, LogBuffer]:
        read_end, write_end = os.pipe()
        setup_read, setup_write = os.pipe()
        config["setup_fd"] = setup_write
        command = [*self._launch_prefix(), sys.executable, "-I", str(LAUNCHER), str(read_end)]
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(read_end, setup_write),
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        os.close(read_end)
        os.close(setup_write)
        with os.fdopen(write_end, "w") as pipe:
            json.dump(config, pipe)
        logs = LogBuffer()
        assert proc.stdout is not None
        reader = threading.Thread(target=_drain, args=(proc.stdout, logs), daemon=True)
        reader.start()
        setup = _SetupChannel(setup_read)
        watch = OutputWatch(workspace.writable, limits)
        verdict, peak_rss = self._watch(proc, limits, watch, request.cancel)
        _, wait_status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        reader.join(5)
        sandbox_error = setup.result()
        cpu = usage.ru_utime + usage.ru_stime
        if b"unshare: " in logs.data:  # unshare's own note when the agent died by a signal
            lines = logs.data.splitlines(keepends=True)
            logs.data = bytearray(b"".join(line for line in lines if not line.startswith(b"unshare: ")))
        peak = max(peak_rss, usage.ru_maxrss * 1024)
        wall = time.perf_counter() - started
        return _Finished(verdict, proc.returncode, cpu, peak, wall, sandbox_error), logs

    def _watch(
        self,
        proc: subprocess.Popen[bytes],
        limits: Limits,
        output: OutputWatch,
        cancel: threading.Event | None,
    ) -> tuple[Outcome | None, int]:
        """Poll until the process exits or must be stopped; the output caps are walked in
        a thread of their own, since reading every process's RSS from /proc can take
        longer on a busy host than an agent needs to write far past its cap.

        Memory and the process count are the whole job's (every descendant, see
        :func:`job_usage`); ``unshare`` itself, when it leads, is the node's, not the agent's."""
        deadline = time.monotonic() + limits.wall_seconds
        memory = limits.memory_mib << 20
        helpers = 1 if self._namespace_prefix() else 0
        peak = 0
        guard = _OutputGuard(proc.pid, output)
        try:
            while True:
                try:
                    exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    return guard.verdict, peak
                if exited is not None:  # left for wait4 to reap, with its rusage
                    return guard.verdict, peak
                usage = job_usage(proc.pid)
                rss = usage.memory_bytes
                peak = max(peak, rss)
                verdict: Outcome | None = guard.verdict
                if verdict is not None:
                    pass
                elif cancel is not None and cancel.is_set():
                    verdict = Outcome.cancelled()
                elif rss > memory:
                    verdict = Outcome.killed(Limit.MEMORY)
                elif len(usage.pids) - helpers > limits.processes:
                    verdict = Outcome.killed(Limit.PROCESSES, f"more than {limits.processes} processes")
                elif time.monotonic() > deadline:
                    verdict = Outcome.killed(Limit.WALL)
                if verdict is not None:
                    kill_all(job_usage(proc.pid).pids)  # listed while unshare still leads them
                    _kill_group(proc.pid)
                    return verdict, peak
                if cancel is not None:
                    cancel.wait(RSS_POLL)  # returns at once when cancelled
                else:
                    time.sleep(RSS_POLL)
        finally:
            guard.stop()


class _OutputGuard:
    """Walks the writable places every POLL and kills the process group on a breach."""

    def __init__(self, pid: int, output: OutputWatch) -> None:
        self.verdict: Outcome | None = None
        self._pid = pid
        self._output = output
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="output-guard", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(POLL):
            verdict = self._output.check()
            if verdict is not None:
                self.verdict = verdict
                _kill_group(self._pid)
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


@dataclass(frozen=True)
class _Finished:
    """How a sandboxed process ended, as the node (or its warm worker) saw it."""

    verdict: Outcome | None  # the watcher stopped it (a limit or a cancel)
    exit_code: int | None
    cpu_seconds: float
    peak_memory_bytes: int
    wall_seconds: float
    sandbox_error: str | None  # the launcher could not lock the sandbox down


class _SetupChannel:
    """The launcher's private pipe: it writes a message if lock-down fails and closes its
    end before the agent's first line, so nothing the agent does can reach it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._fd, 4096):
                self._data += chunk[: 4096 - len(self._data)]
        finally:
            os.close(self._fd)

    def result(self) -> str | None:
        self._thread.join(5)
        return self._data.decode("utf-8", "replace") if self._data else None


def _send_cancel(worker: subprocess.Popen[str], cancel: threading.Event, done: threading.Event) -> None:
    """Send a cancel when ``cancel`` is set, until ``done``.

    It sleeps on ``done``, not on ``cancel``: the job's end wakes it at once, and the caller
    joins it with the worker lock held. Sleeping on ``cancel`` made every warm job with a
    cancel event (every trigger run) wait up to CANCEL_POLL after its agent had exited.
    """
    while not done.wait(CANCEL_POLL):
        if cancel.is_set():
            if done.is_set():  # ended meanwhile (a late cancel would be ignored by the worker anyway)
                return
            with contextlib.suppress(OSError, ValueError):
                assert worker.stdin is not None
                worker.stdin.write(json.dumps({"cancel": True}) + "\n")
                worker.stdin.flush()
            return


def _verdict(name: str) -> Outcome:
    """The warm worker's verdict, named by the worker (never by the agent)."""
    if name == "cancelled":
        return Outcome.cancelled()
    if name == "too-deep":
        return Outcome.failed(f"invalid output: directories nested deeper than {MAX_OUTPUT_DEPTH} levels")
    return Outcome.killed(Limit(name))


def _drain(stream: IO[bytes], logs: LogBuffer) -> None:
    while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
        logs.write(chunk)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _classify(finished: _Finished, limits: Limits) -> Outcome:
    """The outcome of a run the watcher did not stop, from exit status and rusage only."""
    exit_code = finished.exit_code
    if finished.sandbox_error is not None:
        return Outcome.node_error(f"the sandbox could not be set up: {finished.sandbox_error.strip()}")
    if exit_code == 0:
        return Outcome.ok()
    if finished.cpu_seconds >= limits.cpu_seconds - CPU_SLACK:
        return Outcome.killed(Limit.CPU)  # RLIMIT_CPU fired (unshare may report it as its own exit 1)
    if exit_code is None:
        return Outcome.failed("no exit status")
    if exit_code < 0:
        if -exit_code == signal.SIGSYS and limits.processes == 1:
            return Outcome.killed(Limit.PROCESSES, "a new process was refused")
        if -exit_code == signal.SIGXFSZ:
            return Outcome.killed(Limit.OUTPUT)
        return Outcome.failed(f"killed by signal {signal_name(-exit_code)}")
    return Outcome.failed(f"exit code {exit_code}")


def signal_name(number: int) -> str:
    """A signal's name, including real-time signals (which ``signal.Signals`` cannot name)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"
