from __future__ import annotations

import io
from pathlib import Path

import pytest

from storage import dagcbor
from storage.blockstore import BlockStore
from storage.car import export_car, import_car, read_car
from storage.cid import CID
from storage.errors import BlockVerificationError, CarFormatError, IncompleteDAGError
from storage.files import add_path
from storage.varint import encode_uvarint
from tests.support import VECTORS, seeded_bytes


@pytest.fixture
def car_bytes(store: BlockStore, tmp_path: Path) -> tuple[CID, bytes]:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "big").write_bytes(seeded_bytes("car", 700_000))
    (tmp_path / "d" / "small").write_text("small")
    node = add_path(store, tmp_path / "d")
    out = io.BytesIO()
    assert export_car(store, node.cid, out) == 6
    return node.cid, out.getvalue()


def test_round_trip_between_stores(car_bytes: tuple[CID, bytes], tmp_path: Path) -> None:
    root, data = car_bytes
    with BlockStore(tmp_path / "other") as other:
        result = import_car(other, io.BytesIO(data))
        assert result.roots == [root] and result.pinned == [root] and result.blocks == 6
        assert other.missing_blocks(root) == []
        again = io.BytesIO()
        export_car(other, root, again)
        assert again.getvalue() == data  # deterministic order


def test_third_party_car_imports_with_every_block_verified(store: BlockStore) -> None:
    with open(VECTORS / "ipld-codec-fixtures" / "fixtures.car", "rb") as stream:
        result = import_car(store, stream)
    assert result.blocks == 273 and result.roots == []
    assert list(store.verify_all()) == []


def test_every_truncation_is_refused_or_leaves_nothing_pinned(car_bytes: tuple[CID, bytes], tmp_path: Path) -> None:
    root, data = car_bytes
    cuts = sorted({1, 2, 10, 40, 59, 60, 61, 100, 1000, 262_200, len(data) // 2, len(data) - 1})
    for cut in cuts:
        with BlockStore(tmp_path / f"cut{cut}") as target:
            try:
                result = import_car(target, io.BytesIO(data[:cut]))
            except CarFormatError as exc:
                assert "truncated" in str(exc) or "not plausible" in str(exc)
            else:  # a cut that falls between sections is a shorter, valid archive
                assert result.pinned == []
            assert not target.is_pinned(root)


def test_corrupted_block_in_car_is_refused(car_bytes: tuple[CID, bytes], tmp_path: Path) -> None:
    _root, data = car_bytes
    forged = bytearray(data)
    forged[len(data) // 2] ^= 0x40
    with BlockStore(tmp_path / "victim") as target:
        with pytest.raises(BlockVerificationError, match="does not hash"):
            import_car(target, io.BytesIO(bytes(forged)))
        assert target.pins() == []


def _car(header: object, sections: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    encoded = header if isinstance(header, bytes) else dagcbor.encode(header)
    body = b"".join(encode_uvarint(len(s)) + s for s in sections)
    return encode_uvarint(len(encoded)) + encoded + body


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (b"", "empty file"),
        (b"\x00", "not plausible"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "varint"),
        (_car(b"\xa1\x61"), "not valid DAG-CBOR"),
        (_car({"version": 2, "roots": []}), "version"),
        (_car({"roots": []}), "version"),
        (_car({"version": 1, "roots": "nope"}), "roots"),
        (_car({"version": 1, "roots": [1]}), "roots"),
        (_car({"version": 1, "roots": []}, [b"\x01\x55"]), "CID"),
        (_car({"version": 1, "roots": []}, [b"\x01\x55\x12\x20" + bytes(10)]), "runs past"),
        (_car({"version": 1, "roots": []}, [b"\x07\x55\x12\x20" + bytes(40)]), "version"),
        (_car({"version": 1, "roots": []}) + b"\x00", "implausible length"),
        (_car({"version": 1, "roots": []}) + encode_uvarint(64 << 20), "implausible length"),
    ],
)
def test_malformed_archives(archive: bytes, message: str, store: BlockStore) -> None:
    with pytest.raises(CarFormatError, match=message):
        import_car(store, io.BytesIO(archive))


def test_export_of_incomplete_dag_fails(store: BlockStore) -> None:
    root, data = dagcbor.encode_with_cid([CID.for_block(b"absent")])
    store.put(root, data)
    with pytest.raises(IncompleteDAGError):
        export_car(store, root, io.BytesIO())


def test_read_car_is_lazy(car_bytes: tuple[CID, bytes]) -> None:
    root, data = car_bytes
    roots, sections = read_car(io.BytesIO(data))
    assert roots == [root]
    first_cid, _ = next(sections)
    assert first_cid == root
