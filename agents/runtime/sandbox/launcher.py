"""The sandboxed child: locks itself down, then runs the agent's entrypoint.

Run as ``python -I launcher.py FD`` (cold start; the JSON config comes on that inherited
fd), or called as :func:`lock_down_and_run` in a child forked by the warm worker.
Order matters: rlimits, then (with namespaces) a private file-system view
(:mod:`mounts`), then (as root) drop to the sandbox uid or drop every
capability, then Landlock, then seccomp, and only then the agent's code. A layer that
was asked for but cannot be applied aborts the run (exit 120) rather than run less
confined, and says why on the setup channel (``setup_fd``): a pipe only the node
reads, closed before the agent's first line, so an agent cannot forge a setup failure
(which the node reports as its own error) by printing one.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import runpy
import signal
import sys
from typing import Any

if __name__ == "__main__":  # run by path: import the sandbox beside this file, not whatever is installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

# imported before the lock-down: afterwards this package's directory is unreadable
from agents.runtime.sandbox import landlock, mounts, seccomp

EXIT_SANDBOX_FAILED = 120
_PR_SET_PDEATHSIG = 1
_setup_fd: int | None = None


def _fail(message: str) -> None:
    if _setup_fd is not None:
        with contextlib.suppress(OSError):
            os.write(_setup_fd, message.encode("utf-8", "replace")[:4096])
    sys.stderr.write(f"mycel sandbox: {message}\n")
    sys.stderr.flush()
    os._exit(EXIT_SANDBOX_FAILED)


def _set_rlimits(limits: dict[str, int]) -> None:
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["address_space_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["max_output_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_capabilities() -> None:
    """Root without capabilities cannot raise rlimits, load modules or bypass file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):  # empty the bounding set
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    if libc.syscall(126 if os.uname().machine == "x86_64" else 91, header, data) != 0:  # capset
        raise OSError(ctypes.get_errno(), "capset failed")


def lock_down_and_run(config: dict[str, Any]) -> None:
    """Apply every configured layer to this process, then run the agent as ``__main__``."""
    global _setup_fd
    _setup_fd = config.get("setup_fd")
    try:
        _set_rlimits(config["limits"])
    except (ValueError, OSError) as exc:
        _fail(f"cannot set resource limits: {exc}")
    layers = config["layers"]
    if config.get("mount_root"):
        try:
            binds = [(source, target) for source, target in config.get("binds", [])]
            mounts.isolate(config["mount_root"], config["read_only"], config["read_write"], binds)
        except OSError as exc:
            _fail(f"cannot give the sandbox its own file-system view: {exc}")
    os.chdir(config["cwd"])
    ruleset = None
    if "landlock" in layers:
        try:
            ruleset = landlock.prepare(config["read_only"], config["read_write"])
        except OSError as exc:
            _fail(f"cannot prepare Landlock rules: {exc}")
    if os.geteuid() == 0:
        try:
            if "uid" in layers:
                os.setgroups([])
                os.setgid(config["uid"])
                os.setuid(config["uid"])
            else:
                _drop_capabilities()
        except OSError as exc:
            _fail(f"cannot give up root: {exc}")
        # changing credentials clears the parent-death signal the node's setpriv set
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if ruleset is not None:
        try:
            landlock.enforce(ruleset)
        except OSError as exc:
            _fail(f"cannot apply Landlock: {exc}")
    if "seccomp" in layers:
        try:
            seccomp.install(allow_processes=config["limits"]["processes"] > 1)
        except OSError as exc:
            _fail(f"cannot install seccomp filter: {exc}")
    sys.argv = [config["entrypoint"], *config["args"]]
    own_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.path[:] = [entry for entry in sys.path if entry != own_root]  # the node's code is not the agent's
    sys.path[0:0] = [config["code"], *config.get("python_path", [])]  # the bundle, then its wheels' env
    os.environ.clear()
    os.environ.update(config["env"])
    if _setup_fd is not None:
        os.close(_setup_fd)  # set up: the node's end now reads EOF, and the agent has no way back
        _setup_fd = None
    runpy.run_path(config["entrypoint"], run_name="__main__")


def main() -> None:
    with os.fdopen(int(sys.argv[1]), "r") as stream:
        config = json.load(stream)
    lock_down_and_run(config)


if __name__ == "__main__":
    main()
