"""Removing finished job workspaces off the job's critical path.

Removing a workspace is a handful of ``rmdir``/``unlink`` calls, and on a file system mounted
with online ``discard`` (as on these machines) each one that frees a block waits for the
device: ~1.5 ms per directory, 10-20 ms per workspace, more than a whole warm wasm run. For a
stream trigger that removal sat between the agent's exit and the commit that publishes its
output. A :class:`Reaper` takes the finished tree and removes it in one background thread.

Bounded: at most ``max_pending`` trees wait; past that the caller removes its own tree inline,
so a burst of jobs slows down instead of filling the disk. The trees are the job's own
(``job-*`` under the work dir): a node killed before the reaper got to them leaves them to
:meth:`agents.executor.Executor.sweep_work_dir` at the next start. The agent is gone by
the time its tree is handed over (the runtime returned), so nothing writes into it any more.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from agents.runtime.sandbox.outputs import remove_tree

log = logging.getLogger("mycelnet.agents")

MAX_PENDING = 32  # finished workspaces waiting for removal before callers remove their own


class Reaper:
    """One daemon thread removing finished job trees, in the order they were handed over."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._queue: queue.Queue[Path | None] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.inline = 0  # trees removed by their caller because the queue was full (tests and metrics read it)

    def discard(self, root: Path) -> None:
        """Remove ``root`` soon (in the background), or now when the queue is full or closed."""
        if not self._closed:
            self._ensure_thread()
            try:
                self._queue.put_nowait(root)
                return
            except queue.Full:
                self.inline += 1
        remove_tree(root)

    def drain(self) -> None:
        """Wait until every tree handed over so far is removed."""
        self._queue.join()

    def close(self) -> None:
        """Remove what is pending and stop the thread; later trees are removed inline."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        while True:  # handed over while closing, after the thread's last item
            try:
                root = self._queue.get_nowait()
            except queue.Empty:
                return
            if root is not None:
                remove_tree(root)
            self._queue.task_done()

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="workspace-reaper", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            root = self._queue.get()
            try:
                if root is None:
                    return
                remove_tree(root)  # never raises for what it cannot remove: the next start's sweep does
            except Exception as exc:  # a bug here must not stop every later removal
                log.warning("removing workspace %s failed: %s: %s", root, type(exc).__name__, exc)
            finally:
                self._queue.task_done()
