"""Pins record their DAG's size (so `have` probes need no walk) and are written atomically with the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import dagcbor
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import IncompleteDAGError
from storage.files import add_path
from tests.support import seeded_bytes


def test_pin_records_the_dag_size_and_probes_answer_without_a_walk(
    store: BlockStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "f").write_bytes(seeded_bytes("size", 1_000_000))
    root = add_path(store, tmp_path / "f").cid
    walked = store.complete_dag_size(root)
    assert walked is not None and walked > 1_000_000  # leaves plus the interior node
    assert store.pinned_size(root) == walked

    def no_walk(*args: object) -> None:
        raise AssertionError("complete_dag_size walked a pinned DAG")

    monkeypatch.setattr(store, "_sized_walk", no_walk)
    assert store.complete_dag_size(root) == walked


def test_pins_from_before_sizes_were_recorded_still_answer(store: BlockStore) -> None:
    data = b"an old pin"
    cid = CID.for_block(data)
    store.put(cid, data)
    with store._lmdb.write(store._pins) as txn:  # the record format older nodes wrote
        txn.put(bytes(cid), dagcbor.encode({"name": "", "created": 1, "recursive": True}))
    assert store.pinned_size(cid) is None
    assert store.complete_dag_size(cid) == len(data)


def test_pin_checks_and_writes_in_one_transaction(store: BlockStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The completeness check reads the same write transaction that writes the pin."""
    child = b"child block"
    parent = dagcbor.encode({"link": CID.for_block(child)})
    parent_cid = CID.for_block(parent, codec=0x71)
    store.put_many([(CID.for_block(child), child), (parent_cid, parent)])
    reads: list[bool] = []
    real = store._lmdb.read

    def spying_read(*args: object, **kwargs: object) -> object:
        reads.append(True)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store._lmdb, "read", spying_read)
    store.pin(parent_cid, "both")
    assert reads == []  # no separate read transaction: nothing could change between check and pin
    monkeypatch.undo()
    assert store.pinned_size(parent_cid) == len(child) + len(parent)
    store.unpin(parent_cid)
    store.delete(CID.for_block(child))
    with pytest.raises(IncompleteDAGError, match="missing"):
        store.pin(parent_cid)
    assert not store.is_pinned(parent_cid)


def test_an_import_and_its_pin_are_one_commit(store: BlockStore, tmp_path: Path) -> None:
    """The pin lands with the import's last blocks: a job's result costs one synced commit, not two."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "state").write_bytes(b"7")
    (tmp_path / "d" / "output").write_bytes(b"seven")
    before = store._lmdb.commits
    root = add_path(store, tmp_path / "d", name="result").cid
    assert store._lmdb.commits - before == 1
    pin = store.pin_of(root)
    assert pin is not None and pin.name == "result" and pin.size == store.complete_dag_size(root)
    before = store._lmdb.commits
    assert add_path(store, tmp_path / "d", name="again").cid == root  # nothing new: still only the pin's commit
    assert store._lmdb.commits - before == 1


def test_a_refused_pin_leaves_no_blocks_of_its_import(tmp_path: Path) -> None:
    """All or none: an import over the quota writes neither its blocks nor its pin."""
    small = BlockStore(tmp_path / "small", quota=1000)
    try:
        (tmp_path / "big").write_bytes(seeded_bytes("quota", 5000))
        with pytest.raises(Exception, match="quota"):
            add_path(small, tmp_path / "big")
        assert small.pins() == [] and list(small.cids()) == []
    finally:
        small.close()
