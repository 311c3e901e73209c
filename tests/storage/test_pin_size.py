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
