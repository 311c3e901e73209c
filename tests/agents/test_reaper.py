"""Finished workspaces removed off the job's path (agents.reaper), within a bound."""

from __future__ import annotations

import threading
from pathlib import Path

import nacl.signing
import pytest

import agents.reaper as reaper_module
from agents.bundle import pack
from agents.executor import Executor
from agents.reaper import Reaper
from agents.runtime.base import RunRequest
from agents.runtime.python import PythonRuntime
from agents.runtime.sandbox.outputs import remove_tree
from storage.blockstore import BlockStore

AGENT = 'import os\nopen(os.path.join(os.environ["MYCEL_OUT"], "output"), "w").write("done")\n'


class Recording(Reaper):
    """Takes the trees and keeps them: what run() left to be removed after it returned."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[Path] = []

    def discard(self, root: Path) -> None:
        self.handed.append(root)


def _tree(root: Path, name: str) -> Path:
    tree = root / name
    (tree / "out" / "deep").mkdir(parents=True)
    (tree / "out" / "deep" / "file").write_bytes(b"x" * 100)
    (tree / "out").chmod(0o500)  # as an agent may leave it
    return tree


def test_the_executor_returns_before_its_workspace_is_removed(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "main.py").write_text(AGENT)
    manifest = 'name = "a"\nversion = "1.0.0"\nruntime = "python"\nentrypoint = "main.py"\n'
    (agent / "mycel-agent.toml").write_text(manifest)
    work = tmp_path / "work"
    work.mkdir()
    store = BlockStore(tmp_path / "blocks")
    runtime = PythonRuntime(warm=True)
    recording = Recording()
    try:
        executor = Executor(store, {"python": runtime}, nacl.signing.SigningKey(b"k" * 32), work, reaper=recording)  # type: ignore[dict-item]
        done = executor.run(RunRequest("job-1", pack(agent, store), {}))
        assert done.outcome.is_ok, done.outcome
        assert done.result is not None
        [tree] = recording.handed  # handed over, not removed: the commit after run() does not wait for it
        assert tree.parent == work and tree.name.startswith("job-") and (tree / "out" / "output").exists()
    finally:
        runtime.close()
        store.close()
    real = Reaper()
    real.discard(tree)
    real.drain()
    assert not any(work.iterdir())
    real.close()


def test_trees_are_removed_in_the_background_and_drain_waits_for_them(tmp_path: Path) -> None:
    reaper = Reaper()
    trees = [_tree(tmp_path, f"job-{n}") for n in range(5)]
    for tree in trees:
        reaper.discard(tree)
    reaper.drain()
    assert not any(tree.exists() for tree in trees)
    assert reaper.inline == 0
    reaper.close()


def test_a_full_queue_makes_the_caller_remove_its_own_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound: a reaper that falls behind slows the jobs down instead of filling the disk."""
    release, taken = threading.Event(), threading.Event()

    def slow_in_the_reaper(root: Path) -> None:
        if threading.current_thread().name == "workspace-reaper":
            taken.set()
            release.wait(30)
        remove_tree(root)

    monkeypatch.setattr(reaper_module, "remove_tree", slow_in_the_reaper)
    reaper = Reaper(max_pending=1)
    first, queued, third = (_tree(tmp_path, f"job-{n}") for n in range(3))
    reaper.discard(first)
    assert taken.wait(30)  # the thread holds the first
    reaper.discard(queued)  # fills the queue
    reaper.discard(third)  # no room: removed here, now
    assert not third.exists() and queued.exists() and reaper.inline == 1
    release.set()
    reaper.close()  # removes what is pending before it returns
    assert not first.exists() and not queued.exists()


def test_after_close_trees_are_removed_inline(tmp_path: Path) -> None:
    reaper = Reaper()
    reaper.close()
    tree = _tree(tmp_path, "job-late")
    reaper.discard(tree)
    assert not tree.exists()
