"""The warm worker: a pre-started interpreter with the agent environment already imported.

It reads one JSON job per line on stdin, forks a child per job, and answers one JSON
line on stdout when the child is done. The child closes every inherited descriptor,
sends its output to the job's log file, locks itself down exactly as a cold start does
(:func:`launcher.lock_down_and_run`) and runs the agent. Forking a process that has
already imported numpy saves the ~100 ms an agent would spend starting Python and
importing it. The worker enforces wall-clock, memory and output limits itself, since it
runs in its own PID namespace where the node cannot see the children; a ``{"cancel": true}``
line arriving while a job runs kills it. Verdicts are the worker's own words (a limit's
name, or ``cancelled``), never taken from the agent's output.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from typing import Any

if __name__ == "__main__":  # run by path: import the sandbox beside this file, not whatever is installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from agents.runtime.sandbox import launcher
from agents.runtime.sandbox.outputs import SizeWatch
from agents.runtime.sandbox.procfs import job_usage, kill_all

PRELOAD = ("json", "csv", "math", "statistics", "pathlib", "runpy", "numpy")
POLL = 0.002  # output walks and cancel checks
RSS_EVERY = 5  # polls between resident-memory reads


# init of its own PID namespace (the node runs it under unshare): every other process is the job's
_OWN_NAMESPACE = os.getpid() == 1
_SETUP_FD = 3  # the child's end of the setup channel, the only descriptor it keeps


class _Lines:
    """Newline-delimited JSON from the node on fd 0, read without blocking the job loop."""

    def __init__(self) -> None:
        self._buffer = b""
        self.closed = False

    def wait(self, timeout: float | None) -> list[dict[str, Any]]:
        """Messages that arrived within ``timeout`` seconds (None: until one does or EOF)."""
        ready, _, _ = select.select([0], [], [], timeout)
        if ready:
            chunk = os.read(0, 1 << 16)
            self.closed = not chunk
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


def _child(config: dict[str, Any], setup_write: int) -> None:
    try:
        log = os.open(config["log_file"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(setup_write, _SETUP_FD)
        os.closerange(_SETUP_FD + 1, 65536)  # nothing of the worker's (its pipes to the node) leaks in
        config["setup_fd"] = _SETUP_FD
        os.setsid()
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        launcher.lock_down_and_run(config)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def _run_job(config: dict[str, Any], lines: _Lines) -> dict[str, Any]:
    started = time.perf_counter()
    setup_read, setup_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(setup_read)
        _child(config, setup_write)
    os.close(setup_write)
    deadline = time.monotonic() + config["wall_seconds"]
    memory = config["memory_bytes"]
    limits = config["limits"]
    output = SizeWatch(config["read_write"], limits["output_cap_bytes"], limits["max_output_files"])
    peak = rss = polls = processes = 0
    verdict = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if polls % RSS_EVERY == 0:
            job = job_usage(pid, all_but=1) if _OWN_NAMESPACE else job_usage(pid)
            rss, processes = job.memory_bytes, len(job.pids)
            peak = max(peak, rss)
        polls += 1
        if any(message.get("cancel") for message in lines.wait(POLL)) or lines.closed:
            verdict = "cancelled"  # closed: the node is gone, and its jobs with it
        elif rss > memory:
            verdict = "memory"
        elif processes > limits["processes"]:
            verdict = "processes"
        elif time.monotonic() > deadline:
            verdict = "wall"
        else:
            over = output.check()
            if over is not None:
                if over.bytes > output.max_bytes:
                    verdict = "output"
                elif over.entries > output.max_entries:
                    verdict = "files"
                else:
                    verdict = "too-deep"
        if verdict:
            os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
    if _OWN_NAMESPACE:
        _end_job()
    sandbox_error = os.read(setup_read, 4096).decode("utf-8", "replace") or None
    os.close(setup_read)
    return {
        "verdict": verdict,
        "exit_code": os.waitstatus_to_exitcode(status),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_memory_bytes": max(peak, usage.ru_maxrss * 1024),
        "wall_seconds": time.perf_counter() - started,
        "sandbox_error": sandbox_error,
    }


def _end_job() -> None:
    """Kill whatever the job left behind and reap it: no agent process outlives its job.

    The worker is init of its PID namespace and runs one job at a time, so every other
    process here is the job's (its orphans were reparented to the worker)."""
    while True:
        left = job_usage(0, all_but=1).pids
        kill_all(left)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        if not left:
            return


def main() -> None:
    for name in PRELOAD:
        __import__(name)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    lines = _Lines()
    while not lines.closed:
        for message in lines.wait(None):
            if "cancel" in message:
                continue  # a cancel that came after its job ended
            answer = _run_job(message, lines)
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
