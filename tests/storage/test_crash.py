"""A process killed with SIGKILL mid-import leaves a store that opens and verifies clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage.blockstore import BlockStore
from tests.support import REPO_ROOT


def _write_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            step = min(remaining, 8 << 20)
            out.write(os.urandom(step))
            remaining -= step


def test_sigkill_during_large_import_leaves_clean_store(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    _write_random_file(source, 400 << 20)
    data_dir = tmp_path / "data"
    env = dict(os.environ, MYCEL_DATA_DIR=str(data_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli.main", "put", str(source)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    data_file = data_dir / "blocks" / "data.mdb"
    deadline = time.monotonic() + 60
    # wait until at least two batches (32 MiB each) are committed, then kill mid-way
    while time.monotonic() < deadline:
        if data_file.exists() and data_file.stat().st_size > 80 << 20:
            break
        assert proc.poll() is None, "import finished before it could be interrupted"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    with BlockStore(data_dir / "blocks") as store:
        stats = store.stats()
        assert 0 < stats.blocks < (400 << 20) // (256 << 10)  # partial, committed batches only
        assert store.pins() == []  # nothing partial is pinned
        assert list(store.verify_all()) == []
        assert stats.blocks == sum(1 for _ in store.cids())
        assert stats.bytes == sum(store.get_size(cid) or 0 for cid in store.cids())
        freed = store.gc()
        assert freed.removed_blocks == stats.blocks and store.stats().bytes == 0

    # the same import runs to completion afterwards and is pinned
    done = subprocess.run(
        [sys.executable, "-m", "node.cli.main", "put", str(source)], cwd=REPO_ROOT, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    with BlockStore(data_dir / "blocks") as store:
        assert [str(pin.cid) for pin in store.pins()] == [done.stdout.decode().strip()]
