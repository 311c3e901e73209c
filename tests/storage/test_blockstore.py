from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from storage import dagcbor
from storage.blockstore import BlockStore
from storage.cid import CID, DAG_CBOR, DAG_PB
from storage.errors import (
    BlockNotFoundError,
    BlockVerificationError,
    IncompleteDAGError,
    QuotaExceededError,
    StorageError,
)
from storage.files import add_path
from tests.support import REPO_ROOT, seeded_bytes


def _block(text: str) -> tuple[CID, bytes]:
    data = text.encode()
    return CID.for_block(data), data


def test_put_get_has_delete_and_accounting(store: BlockStore) -> None:
    cid, data = _block("hello")
    assert not store.has(cid)
    assert store.put(cid, data) is True
    assert store.put(cid, data) is False  # idempotent, not double counted
    assert store.has(cid) and store.get(cid) == data
    assert store.stats().blocks == 1 and store.stats().bytes == 5
    assert list(store.cids()) == [cid]
    assert store.delete(cid) is True and store.delete(cid) is False
    assert store.stats().blocks == 0 and store.stats().bytes == 0
    with pytest.raises(BlockNotFoundError, match="not in the local store"):
        store.get(cid)


def test_put_refuses_mismatched_bytes_and_writes_nothing(store: BlockStore) -> None:
    cid, _ = _block("the real content")
    with pytest.raises(BlockVerificationError, match="nothing was written"):
        store.put(cid, b"forged content")
    assert not store.has(cid)
    assert store.stats().blocks == 0


def test_put_many_is_all_or_nothing_on_a_bad_block(store: BlockStore) -> None:
    good = [_block(f"block {i}") for i in range(5)]
    bad_cid, _ = _block("expected")
    with pytest.raises(BlockVerificationError):
        store.put_many([*good, (bad_cid, b"forged")])
    assert store.stats().blocks == 0
    assert store.put_many(good) == 5


def test_corruption_on_disk_is_detected_and_never_returned(tmp_path: Path) -> None:
    path = tmp_path / "blocks"
    payload = seeded_bytes("corrupt-me", 4096)
    cid = CID.for_block(payload)
    with BlockStore(path) as store:
        store.put(cid, payload)
    raw = bytearray((path / "data.mdb").read_bytes())
    offset = raw.find(payload)
    assert offset > 0
    raw[offset + 100] ^= 0x01
    (path / "data.mdb").write_bytes(bytes(raw))
    with BlockStore(path) as store:
        with pytest.raises(BlockVerificationError, match="corrupted on disk"):
            store.get(cid)
        assert store.corrupt_blocks_seen == 1
        assert [bad for bad, _ in store.verify_all()] == [cid]
        assert store.get(cid, verify=False) != payload  # the raw path shows why


def test_pins_keep_blocks_through_gc(store: BlockStore, tmp_path: Path) -> None:
    (tmp_path / "keep").write_bytes(seeded_bytes("keep", 600_000))
    (tmp_path / "drop").write_bytes(seeded_bytes("drop", 600_000))
    keep = add_path(store, tmp_path / "keep")
    drop = add_path(store, tmp_path / "drop", pin=False)
    loose, loose_data = _block("loose")
    store.put(loose, loose_data)
    before = store.stats()
    result = store.gc()
    assert result.removed_blocks == 4 + 1  # 3 leaves + root of "drop", and the loose block
    assert result.freed_bytes == before.bytes - store.stats().bytes
    assert not store.has(drop.cid) and not store.has(loose)
    assert store.missing_blocks(keep.cid) == []
    assert store.unpin(keep.cid) and not store.unpin(keep.cid)
    store.gc()
    assert store.stats().blocks == 0 and store.stats().bytes == 0


def test_gc_keeps_dag_cbor_linked_blocks(store: BlockStore) -> None:
    child, child_data = _block("child")
    store.put(child, child_data)
    root, root_data = dagcbor.encode_with_cid({"child": child})
    store.put(root, root_data)
    store.pin(root, "record")
    assert store.gc().removed_blocks == 0
    assert [pin.name for pin in store.pins()] == ["record"]


def test_pin_refuses_incomplete_dag(store: BlockStore) -> None:
    missing = CID.for_block(b"never stored")
    root, data = dagcbor.encode_with_cid([missing])
    store.put(root, data)
    with pytest.raises(IncompleteDAGError, match="missing"):
        store.pin(root)
    assert store.pins() == []
    assert store.missing_blocks(root) == [missing]


def test_quota_gives_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    with BlockStore(tmp_path / "q", quota=10_000) as store:
        small, small_data = _block("x" * 6000)
        store.put(small, small_data)
        big, big_data = _block("y" * 6000)
        with pytest.raises(QuotaExceededError, match="mycel gc"):
            store.put(big, big_data)
        assert not store.has(big)
        assert store.stats().bytes == 6000


def test_map_grows_instead_of_failing(tmp_path: Path) -> None:
    with BlockStore(tmp_path / "grow", map_size=1 << 20) as store:
        blocks = [(CID.for_block(d), d) for d in (seeded_bytes(f"g{i}", 200_000) for i in range(40))]
        assert store.put_many(blocks) == 40
        assert store.stats().map_size >= 8 << 20  # grew from 1 MiB to hold 8 MB
        assert all(store.get(cid) == data for cid, data in blocks)


def test_store_reopens_with_same_content(tmp_path: Path) -> None:
    cid, data = _block("durable")
    with BlockStore(tmp_path / "s") as store:
        store.put(cid, data)
        store.pin(cid, "p")
    with BlockStore(tmp_path / "s") as store:
        assert store.get(cid) == data and store.is_pinned(cid)


def test_walk_yields_every_block_once(store: BlockStore, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("a", "b"):
        (tmp_path / "d" / name).write_bytes(b"same content")  # deduplicated leaf
    node = add_path(store, tmp_path / "d")
    walked = [cid for cid, _ in store.walk(node.cid)]
    assert walked[0] == node.cid and len(walked) == len(set(walked)) == 2
    assert {cid.codec for cid in walked} == {DAG_PB, 0x55}


def test_gc_waits_for_a_running_import(store: BlockStore) -> None:
    cid, data = _block("in flight")
    finished: list[float] = []
    with store.import_session():
        store.put(cid, data)
        with pytest.raises(StorageError, match="busy"):
            store.gc(wait=False)
        thread = threading.Thread(target=lambda: finished.append((store.gc(), time.monotonic())[1]))
        thread.start()
        time.sleep(0.2)
        assert not finished  # GC is blocked while the import holds its session
        store.pin(cid)
        released = time.monotonic()
    thread.join(5)
    assert finished and finished[0] >= released
    assert store.has(cid)


def test_unopenable_directory_gives_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot"):
        BlockStore(blocker / "blocks")


def test_oversized_block_refused(store: BlockStore) -> None:
    data = bytes(5 << 20)
    with pytest.raises(StorageError, match="block limit"):
        store.put(CID.for_block(data), data)


def test_multiple_processes_share_one_store(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    cid, data = _block("seen by both")
    with BlockStore(path) as first:
        script = (
            "import sys\nfrom storage.blockstore import BlockStore\nfrom storage.cid import CID\n"
            f"s = BlockStore({str(path)!r})\ns.put(CID.for_block(b'seen by both'), b'seen by both')\n"
        )
        subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True)
        assert first.get(cid) == data


def test_dag_cbor_block_verified_like_any_other(store: BlockStore) -> None:
    cid, _data = dagcbor.encode_with_cid({"a": 1})
    assert cid.codec == DAG_CBOR
    with pytest.raises(BlockVerificationError):
        store.put(cid, dagcbor.encode({"a": 2}))
