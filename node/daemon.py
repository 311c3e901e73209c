"""``mycel node start``: run one node until SIGINT/SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from node.config import NodeConfig
from node.errors import NodeError

LOCK_FILE = "node.lock"
# How long a thread may keep the GIL while another waits for it. CPython's 5 ms default
# means every wake-up of the event loop can wait 5 ms behind a job's staging thread or
# the libp2p thread, and one API request needs several wake-ups; 1 ms keeps the loop
# responsive under that load (measured in bench/eventloop.py) for a little more switching.
GIL_SWITCH_INTERVAL = 0.001


class DataDirInUseError(NodeError):
    """Another daemon runs on this data dir (two would corrupt each other's store and jobs)."""


class DataDirLock:
    """An exclusive flock on ``<data dir>/node.lock`` for the daemon's whole life.

    The kernel drops a flock when its process dies, a crash or SIGKILL included, so a lock is
    never stale; the file's content (pid, API address) only names the holder for the refusal.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by agent processes
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise DataDirInUseError(
                f"{self.path.parent} is in use by the node with {holder}; stop it or pick another --data-dir"
            ) from None
        self._fd = fd
        self.record("")

    def record(self, api_url: str) -> None:
        """Name this process (and, once it is up, its API) as the holder."""
        if self._fd is not None:
            data = json.dumps({"pid": os.getpid(), "api_url": api_url}).encode()
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def _record(fd: int) -> tuple[int, str]:
    """The holder's pid and API URL as the lock file names them (0, "" when unreadable)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return int(record.get("pid", 0)), str(record.get("api_url", ""))
    except (ValueError, TypeError, AttributeError, OSError):
        return 0, ""


def _holder(fd: int) -> str:
    pid, api_url = _record(fd)
    return f"pid {pid or 'unknown'} (api {api_url or 'not up yet'})"


class NodeNotRunningError(NodeError):
    """``mycel node stop`` found no daemon holding the data dir's lock."""


class NodeStopTimeoutError(NodeError):
    """The daemon got SIGTERM but still holds its data dir after the wait."""


def probe_lock(data_dir: Path) -> tuple[bool, int]:
    """Whether a daemon holds ``data_dir``'s lock now, and the pid its file names (0: none yet).

    The flock itself is the truth (the kernel drops it with the process); the pid is read
    from the file only while the lock is held, so a stale file never names a stranger.
    """
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False, 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, _record(fd)[0]
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, 0
    finally:
        os.close(fd)


def lock_holder(data_dir: Path) -> int | None:
    """The pid of the daemon that holds ``data_dir``'s lock now, or None when none does."""
    held, pid = probe_lock(data_dir)
    if not held:
        return None
    if pid <= 0:  # between acquiring the lock and naming itself, or already on its way out
        raise NodeError(f"a node holds {data_dir / LOCK_FILE} but names no pid in it (starting or stopping); retry")
    return pid


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie, dead but not yet reaped by its parent, counts)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            state = stream.read().rsplit(b")", 1)[-1].split()[0]
        # A leader shows Z while the kernel still tears down its other threads.
        return state in (b"Z", b"X") and len(os.listdir(f"/proc/{pid}/task")) <= 1
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def stop_daemon(data_dir: Path, timeout: float = 30.0) -> int:
    """SIGTERM the daemon running on ``data_dir`` and wait until it has exited; returns its pid.

    The daemon shuts down in order (jobs, API, chain, libp2p, store) and drops the lock last,
    so once the lock is free nothing of it writes to the data dir any more.
    """
    pid = lock_holder(data_dir)
    if pid is None:
        raise NodeNotRunningError(f"no node is running on {data_dir} (start one with `mycel node start`)")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    while probe_lock(data_dir)[0] or not _gone(pid):  # the lock goes last, then the process
        if time.monotonic() > deadline:
            raise NodeStopTimeoutError(
                f"the node (pid {pid}) did not exit within {timeout:.0f} s of SIGTERM; "
                f"wait longer with --timeout, or end it with `kill -9 {pid}`"
            )
        time.sleep(0.05)
    return pid


# py_ecc (imported with web3) raises the recursion limit to 100000 at import; with it, one deeply
# nested input (a JSON body, a CBOR block) recurses past the C stack and kills the process with
# SIGSEGV instead of raising RecursionError. Everything the node parses stays far below this.
RECURSION_LIMIT = 1000


def sane_recursion_limit() -> None:
    """Put the recursion limit back to Python's default once every heavy import is done."""
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)


async def run_node(config: NodeConfig, lock: DataDirLock | None = None) -> None:
    from node.service import NodeService  # here, not at the top: `mycel node stop` needs none of it

    service = NodeService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    sane_recursion_limit()  # again: starting may import more (the chain client)
    if lock is not None:
        lock.record(service.api_url)
    for line in startup_lines(service.identity.peer_id, await service.network.addrs(), service.api_url, config):
        print(line, flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()


def startup_lines(peer_id: str, addrs: list[str], api_url: str, config: NodeConfig) -> list[str]:
    """What an operator needs once the node is up: who it is, where peers and clients reach it."""
    suffix = f"/p2p/{peer_id}"
    lines = [f"mycel node {peer_id} up (region {config.region})"]
    lines += [f"listen     {addr if addr.endswith(suffix) else addr + suffix}" for addr in addrs]
    lines += [f"api        {api_url}", f"dashboard  {api_url}/"]
    lines.append(f"config     {config.source or 'defaults (no node.toml; write one with `mycel init`)'}")
    lines.append(f"data dir   {config.data_dir}; stop with `mycel node stop --data-dir {config.data_dir}`")
    return lines


def start(config: NodeConfig, log_level: str = "INFO") -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("libp2p", "multiaddr", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sane_recursion_limit()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    lock = DataDirLock(config.data_dir)
    lock.acquire()
    try:
        asyncio.run(run_node(config, lock))
    finally:
        lock.release()
