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
from pathlib import Path

from node.config import NodeConfig
from node.errors import NodeError
from node.service import NodeService

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


def _holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid, api_url = int(record.get("pid", 0)), str(record.get("api_url", ""))
    except (ValueError, TypeError, AttributeError, OSError):
        pid, api_url = 0, ""
    return f"pid {pid or 'unknown'} (api {api_url or 'not up yet'})"


# py_ecc (imported with web3) raises the recursion limit to 100000 at import; with it, one deeply
# nested input (a JSON body, a CBOR block) recurses past the C stack and kills the process with
# SIGSEGV instead of raising RecursionError. Everything the node parses stays far below this.
RECURSION_LIMIT = 1000


def sane_recursion_limit() -> None:
    """Put the recursion limit back to Python's default once every heavy import is done."""
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)


async def run_node(config: NodeConfig, lock: DataDirLock | None = None) -> None:
    service = NodeService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    sane_recursion_limit()  # again: starting may import more (the chain client)
    if lock is not None:
        lock.record(service.api_url)
    print(f"mycel node {service.identity.peer_id} api {service.api_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()


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
