"""Ctrl-C in the middle of ``mycel put`` and ``mycel job run``: one line that says what was
left behind and what to do, exit 130, no traceback. Real LMDB and a real node process for the
uploads; the fake node (which holds a job's event stream open on cue) for the job."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from storage.blockstore import BlockStore
from tests.sdk.fakenode import fake_node
from tests.support import REPO_ROOT

CHUNK = 256 << 10


def _distinct_chunks(path: Path, size: int) -> Path:
    """A file whose every 256 KiB chunk differs (so nothing dedupes): a counter at each chunk's
    start and holes between, so writing it costs nothing and reading it no disk."""
    with open(path, "wb") as out:
        for index in range(size // CHUNK):
            out.seek(index * CHUNK)
            out.write(index.to_bytes(8, "big"))
        out.truncate(size)
    return path


def _mycel(*args: str | Path, stderr: int | IO[Any] = subprocess.PIPE) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "node.cli.main", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=REPO_ROOT)


def _wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"mycel ended (rc {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.005)


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    return stdout, stderr


def _allocated(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except FileNotFoundError:
        return 0


def test_ctrl_c_during_a_local_put_says_how_much_stays_and_gc_reclaims_it(tmp_path: Path) -> None:
    big = _distinct_chunks(tmp_path / "big.bin", 160 << 20)
    data_dir = tmp_path / "data"
    proc = _mycel("put", big, "--data-dir", data_dir)
    _wait_for(lambda: _allocated(data_dir / "blocks" / "data.mdb") > 40 << 20, "committed blocks", proc)
    stdout, stderr = _interrupt(proc)
    assert proc.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    match = re.fullmatch(r"error: interrupted: (\d+) MiB of .*big\.bin stay in the store as unpinned blocks; "
                         r"`mycel gc` reclaims them\n", stderr)  # fmt: skip
    assert match, stderr
    left = int(match.group(1))
    assert 32 <= left < 160
    with BlockStore(data_dir / "blocks") as store:  # what `mycel gc` runs
        assert store.pins() == []
        freed = store.gc().freed_bytes
    assert abs(freed / (1 << 20) - left) <= 1  # the line said what gc then reclaims


def test_ctrl_c_during_a_put_to_a_node_leaves_nothing_there(cluster: Any, tmp_path: Path) -> None:
    (node,) = cluster(1)
    big = _distinct_chunks(tmp_path / "big.bin", 160 << 20)
    scratch = Path(node.data_dir) / "tmp"

    def receiving() -> bool:
        return any(_allocated(body) > 16 << 20 for body in scratch.glob("upload-*/body"))

    proc = _mycel("put", big, "--api", node.api_url)
    _wait_for(receiving, "upload reaching the node", proc)
    stdout, stderr = _interrupt(proc)
    assert proc.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"error: interrupted: the upload of {big} to {node.api_url} stopped; the node drops")
    deadline = time.monotonic() + 30
    while list(scratch.glob("upload-*")):  # the node notices the cut connection and drops the partial body
        assert time.monotonic() < deadline, "the node kept the partial upload"
        time.sleep(0.01)
    with urllib.request.urlopen(f"{node.api_url}/v1/pins", timeout=10) as answer:
        assert json.load(answer)["pins"] == []


def test_ctrl_c_while_job_run_waits_prints_the_job_id_and_how_to_follow_it() -> None:
    release = threading.Event()
    with fake_node() as node:
        node.between_events = lambda index: release.wait(30) and None  # the job stays "queued" until released
        agent = node.add_file(b"any CID: the fake node runs whatever it is given")
        proc = _mycel("job", "run", str(agent), "--api", node.url)
        assert proc.stderr is not None
        first = proc.stderr.readline()  # "job ID submitted to URL", printed before waiting
        match = re.fullmatch(rf"job ([0-9a-f]{{32}}) submitted to {re.escape(node.url)}\n", first)
        assert match, first
        job_id = match.group(1)
        assert proc.stderr.readline().split() == ["queued", "reason", "0"]  # following the event stream
        stdout, rest = _interrupt(proc)
        release.set()
    assert proc.returncode == 130, rest
    assert stdout == "" and "Traceback" not in rest, rest
    *progress, last = rest.splitlines()
    assert all(line.startswith("  queued ") for line in progress), rest  # transitions only, as they came
    assert last + "\n" == (f"error: interrupted: job {job_id} goes on at {node.url}; follow it with "
                    f"`mycel job status {job_id} --api {node.url}`, cancel it with "
                    f"`mycel job cancel {job_id} --api {node.url}`\n")  # fmt: skip
