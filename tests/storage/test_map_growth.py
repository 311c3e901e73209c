"""LMDB map growth is exclusive with every reader, and growth by another process is adopted."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from storage.blockstore import BlockStore
from storage.cid import CID
from storage.lmdbenv import MapGate, MapGateError
from storage.records import RecordTables
from tests.support import REPO_ROOT

_CHILD_WRITES = """
import sys
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.records import RecordTables
with BlockStore(sys.argv[1], map_size=1 << 20, sync=False) as store:
    for i in range(160):
        data = bytes([i % 251]) * (64 << 10) + str(i).encode()
        store.put(CID.for_block(data), data)
    print(store.stats().map_size)
tables = RecordTables(__import__("pathlib").Path(sys.argv[2]), ("a",), map_size=64 << 10)
for i in range(150):
    tables.put("a", f"child{i}", {"blob": bytes([i % 251]) * 20_000})
tables.close()
"""


def test_readers_on_the_loop_and_in_threads_survive_ten_doublings(tmp_path: Path) -> None:
    """A child process, because a remap under a live reader may kill the process that runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.storage.growth_stress", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["errors"] == []
    assert report["blocks_ok"] is True
    assert report["block_remaps"] >= 10 and report["record_remaps"] >= 10
    assert report["reads"] > 1000


def test_growth_by_another_process_is_adopted(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks", map_size=1 << 20, sync=False)
    tables = RecordTables(tmp_path / "records", ("a",), map_size=64 << 10)
    mine = b"written by the daemon"
    store.put(CID.for_block(mine), mine)
    tables.put("a", "mine", 1)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_WRITES, str(tmp_path / "blocks"), str(tmp_path / "records")],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rounds = 0
    while child.poll() is None or rounds < 3:  # keep reading and writing while the child grows the map
        assert store.get(CID.for_block(mine)) == mine
        extra = f"daemon write {rounds}".encode()
        store.put(CID.for_block(extra), extra)
        assert tables.get("a", "mine") == 1
        tables.put("a", f"daemon{rounds}", rounds)
        rounds += 1
    out, err = child.communicate()
    assert child.returncode == 0, err[-2000:]
    assert int(out) >= 8 << 20  # the child did grow the map
    for i in (0, 159):
        data = bytes([i % 251]) * (64 << 10) + str(i).encode()
        assert store.get(CID.for_block(data)) == data
    assert tables.get("a", "child149") == {"blob": bytes([149]) * 20_000}
    assert store.stats().blocks == 161 + rounds
    assert tables.count("a") == 151 + rounds
    store.close()
    tables.close()


def test_resizing_while_holding_a_transaction_raises_instead_of_deadlocking() -> None:
    gate = MapGate()
    with gate.shared(), pytest.raises(MapGateError, match="finish the read"), gate.exclusive():
        pass


def test_a_pending_resize_waits_for_readers_and_holds_new_ones_back() -> None:
    gate = MapGate()
    events: list[str] = []
    reader_in = threading.Event()
    release_reader = threading.Event()

    def reader() -> None:
        with gate.shared():
            reader_in.set()
            release_reader.wait(10)
            events.append("reader out")

    def resizer() -> None:
        with gate.exclusive():
            events.append("resized")

    first = threading.Thread(target=reader)
    first.start()
    assert reader_in.wait(10)
    second = threading.Thread(target=resizer)
    second.start()
    with gate._cond:  # the resizer has registered and waits for the reader
        assert gate._cond.wait_for(lambda: gate._waiting_resizers == 1, 10)
    release_reader.set()
    first.join(10)
    second.join(10)
    assert events == ["reader out", "resized"]
