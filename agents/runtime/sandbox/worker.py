"""The warm worker: a pre-started interpreter with the agent environment already imported.

It reads one JSON job per line on stdin, forks a child per job, and answers one JSON
line on stdout when the child is done. The child closes every inherited descriptor,
sends its output to the job's log file, locks itself down exactly as a cold start does
(:func:`launcher.lock_down_and_run`) and runs the agent. Forking a process that has
already imported numpy saves the ~100 ms an agent would spend starting Python and
importing it. The worker enforces wall-clock and memory limits itself, since it runs
in its own PID namespace where the node cannot see the children.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from typing import Any

from agents.runtime.sandbox import launcher
from agents.runtime.sandbox.procfs import session_rss

PRELOAD = ("json", "csv", "math", "statistics", "pathlib", "runpy", "numpy")
POLL = 0.005


def _child(config: dict[str, Any]) -> None:
    try:
        log = os.open(config["log_file"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, 65536)  # nothing of the worker's (its pipes to the node) leaks in
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


def _run_job(config: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(config)
    deadline = time.monotonic() + config["wall_seconds"]
    memory = config["memory_bytes"]
    peak, verdict = 0, None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        rss = session_rss(pid)
        peak = max(peak, rss)
        if rss > memory:
            verdict = "killed: memory limit"
        elif time.monotonic() > deadline:
            verdict = "killed: wall-clock limit"
        if verdict:
            os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(POLL)
    return {
        "verdict": verdict,
        "exit_code": os.waitstatus_to_exitcode(status),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_memory_bytes": max(peak, usage.ru_maxrss * 1024),
        "wall_seconds": time.perf_counter() - started,
    }


def main() -> None:
    for name in PRELOAD:
        __import__(name)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        answer = _run_job(json.loads(line))
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
