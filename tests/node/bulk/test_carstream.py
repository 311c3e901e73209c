"""The receiver's CAR check on its own: order, hashes, completeness, in any chunking."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.bulk.carstream import BadCar, CarVerifier, TruncatedCar
from storage.blockstore import BlockStore
from storage.car import car_header, car_section
from storage.cid import CID
from storage.files import add_path
from tests.support import seeded_bytes


@pytest.fixture
def dag(tmp_path: Path) -> tuple[CID, list[tuple[CID, bytes]]]:
    store = BlockStore(tmp_path / "store", map_size=16 << 20)
    (tmp_path / "f").write_bytes(seeded_bytes("carstream", 1_200_000))  # 5 leaves under one root
    root = add_path(store, tmp_path / "f").cid
    blocks = list(store.walk(root))
    store.close()
    return root, blocks


def stream(root: CID, blocks: list[tuple[CID, bytes]]) -> bytes:
    return car_header([root]) + b"".join(car_section(cid, data) for cid, data in blocks)


def run(root: CID, data: bytes, chunk: int) -> list[CID]:
    verifier = CarVerifier(root)
    got = []
    for start in range(0, len(data), chunk):
        got += [block.cid for block in verifier.feed(data[start : start + chunk])]
    verifier.finish()
    return got


@pytest.mark.parametrize("chunk", [1, 7, 65536, 1 << 30])
def test_whole_dag_in_any_chunking(dag: tuple[CID, list[tuple[CID, bytes]]], chunk: int) -> None:
    root, blocks = dag
    data = stream(root, blocks)
    if chunk == 1:
        data = data[:2000] + data[2000:]  # one-byte feeds over the header and the first sections only
        verifier = CarVerifier(root)
        got = [b.cid for i in range(2000) for b in verifier.feed(data[i : i + 1])]
        got += [b.cid for b in verifier.feed(data[2000:])]
        verifier.finish()
    else:
        got = run(root, data, chunk)
    assert got == [cid for cid, _ in blocks]


def test_out_of_order_block_is_refused(dag: tuple[CID, list[tuple[CID, bytes]]]) -> None:
    root, blocks = dag
    swapped = [blocks[0], blocks[2], blocks[1], *blocks[3:]]
    with pytest.raises(BadCar, match=r"not .* the next one"):
        run(root, stream(root, swapped), 1 << 20)


def test_corrupted_block_is_refused(dag: tuple[CID, list[tuple[CID, bytes]]]) -> None:
    root, blocks = dag
    cid, data = blocks[3]
    spoiled = [*blocks[:3], (cid, bytes([data[0] ^ 1]) + data[1:]), *blocks[4:]]
    with pytest.raises(BadCar, match="does not hash"):
        run(root, stream(root, spoiled), 1 << 20)


def test_missing_block_and_truncation_are_refused(dag: tuple[CID, list[tuple[CID, bytes]]]) -> None:
    root, blocks = dag
    with pytest.raises(BadCar):  # a block skipped: the next one is not what the walk expects
        run(root, stream(root, [*blocks[:2], *blocks[3:]]), 1 << 20)
    with pytest.raises(TruncatedCar, match="DAG incomplete"):  # the last block never came
        run(root, stream(root, blocks[:-1]), 1 << 20)
    with pytest.raises(TruncatedCar, match="inside a section"):
        run(root, stream(root, blocks)[:-100], 1 << 20)


def test_extra_block_and_foreign_root_are_refused(dag: tuple[CID, list[tuple[CID, bytes]]]) -> None:
    root, blocks = dag
    with pytest.raises(BadCar, match="after the last block"):
        run(root, stream(root, [*blocks, blocks[1]]), 1 << 20)
    with pytest.raises(BadCar, match="does not name exactly the root"):
        run(root, stream(blocks[1][0], blocks), 1 << 20)
