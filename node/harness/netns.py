"""Network namespaces for one harness run: create, enter, list, and tear down without leftovers.

Every name starts with ``mycel-<owner pid>-<run>-``, so parallel runs never collide and a later
run can remove what a crashed one left (its owner pid is gone). Teardown kills every process in
a namespace (``ip netns pids``) before deleting it: a node left running would keep it alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from node.errors import NodeError

PREFIX = "mycel-"
NETNS_DIR = Path("/var/run/netns")
_CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)
_SETNS_LOCK = threading.Lock()


class NetnsError(NodeError):
    """An ``ip`` or ``tc`` command failed, or namespaces cannot be made here."""


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip ARGS`` (inside ``netns`` when given); the command's stderr is the error."""
    command = ["ip", *(["-n", netns] if netns else []), *args]
    return _run(command, check)


def tc(netns: str, *args: str) -> str:
    return _run(["ip", "netns", "exec", netns, "tc", *args], True)


def _run(command: list[str], check: bool) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise NetnsError(f"{command[0]} is not installed (iproute2 provides ip and tc)") from exc
    if check and done.returncode != 0:
        raise NetnsError(f"`{' '.join(command)}` failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, in one line; None when they can."""
    probe = f"{PREFIX}probe-{os.getpid()}"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2's `ip` and `tc` are not installed"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun (TUN devices are needed for the delay router)"
    try:
        ip("netns", "add", probe)
    except NetnsError as exc:
        return f"cannot create network namespaces here (needs root / CAP_NET_ADMIN): {exc}"
    with contextlib.suppress(NetnsError):
        ip("netns", "delete", probe)
    return None


def create(name: str) -> None:
    """A fresh namespace with its loopback up."""
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def pids(name: str) -> list[int]:
    out = _run(["ip", "netns", "pids", name], False)
    return [int(word) for word in out.split() if word.isdigit()]


def destroy(name: str, grace: float = 5.0) -> None:
    """Kill every process in ``name`` (SIGTERM, then SIGKILL after ``grace``), then delete it."""
    running = pids(name)
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = pids(name)
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while pids(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    ip("netns", "delete", name, check=False)


def ours(prefix: str = PREFIX) -> list[str]:
    """Namespaces whose name starts with ``prefix``."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(entry.name for entry in NETNS_DIR.iterdir() if entry.name.startswith(prefix))


def orphans() -> list[str]:
    """Harness namespaces whose owner process is gone (a crashed run): safe to remove."""
    found = []
    for name in ours():
        owner = name[len(PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            found.append(name)
    return found


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with the calling thread inside namespace ``name`` (setns affects one thread),
    for creating sockets there: a socket stays in the namespace it was made in."""
    with _SETNS_LOCK, open("/proc/thread-self/ns/net", "rb") as home, open(NETNS_DIR / name, "rb") as target:
        if _LIBC.setns(target.fileno(), _CLONE_NEWNET) != 0:
            raise NetnsError(f"cannot enter namespace {name}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if _LIBC.setns(home.fileno(), _CLONE_NEWNET) != 0:  # pragma: no cover - would strand the thread
                raise NetnsError(f"cannot leave namespace {name}: {os.strerror(ctypes.get_errno())}")


def socket_in(name: str, kind: socket.SocketKind = socket.SOCK_STREAM) -> socket.socket:
    """An IPv4 socket that lives in namespace ``name``."""
    with entered(name):
        return socket.socket(socket.AF_INET, kind)
