from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from storage.blockstore import BlockStore
from storage.cid import CID
from storage.dagpb import PBLink, PBNode
from storage.errors import UnixFSError
from storage.files import add_path, cat, get_path
from storage.unixfs.data import DIRECTORY_DATA
from storage.unixfs.importer import ImportOptions, NullSink, import_bytes, import_path
from tests.support import REPO_ROOT, load_json, seeded_bytes

CID_VECTORS: Any = load_json("cid/cid_vectors.json")
JS_VECTORS: Any = load_json("unixfs/js_importer_vectors.json")


def _vector_bytes(name: str, size: int, hex_value: str | None) -> bytes:
    if hex_value is not None:
        return bytes.fromhex(hex_value)
    if name.startswith("zeros"):
        return bytes(size)
    return bytes(i % 256 for i in range(size))


FILE_CASES = [
    (raw["name"], int(raw["size"]), raw.get("hex"), unixfs)
    for raw, unixfs in zip(CID_VECTORS["raw_blocks"], CID_VECTORS["unixfs_files"], strict=True)
]


@pytest.mark.parametrize(("name", "size", "hex_value", "expected"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_file_cids_match_ipfs_add(name: str, size: int, hex_value: str | None, expected: dict[str, str]) -> None:
    data = _vector_bytes(name, size, hex_value)
    assert str(import_bytes(data, NullSink()).cid) == expected["kubo_add_cid_version_1"]
    assert str(import_bytes(data, NullSink(), ImportOptions(cid_version=0)).cid) == expected["kubo_add_default_cidv0"]
    profile_2025 = ImportOptions(chunk_size=1 << 20, max_links=1024)
    assert str(import_bytes(data, NullSink(), profile_2025).cid) == expected["unixfs_v1_2025_profile"]


@pytest.mark.parametrize("case", JS_VECTORS["files"], ids=lambda c: c["name"])
def test_multi_level_trees_match_js_importer(case: dict[str, Any]) -> None:
    data = seeded_bytes(case["seed"], case["size"])
    shape = {"chunk_size": case["chunk_size"], "max_links": case["max_links"]}
    assert str(import_bytes(data, NullSink(), ImportOptions(**shape)).cid) == case["cid_v1"]
    assert str(import_bytes(data, NullSink(), ImportOptions(cid_version=0, **shape)).cid) == case["cid_v0"]


def _materialise(tree: dict[str, int | None], base: Path) -> None:
    for rel, size in tree.items():
        path = base / rel
        if size is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(seeded_bytes(rel, size))


@pytest.mark.parametrize("case", JS_VECTORS["directories"], ids=lambda c: c["name"])
def test_directory_cids_match_js_importer(case: dict[str, Any], tmp_path: Path) -> None:
    _materialise(case["tree"], tmp_path)
    assert str(import_path(tmp_path / "root", NullSink()).cid) == case["cid_v1"]
    assert str(import_path(tmp_path / "root", NullSink(), ImportOptions(cid_version=0)).cid) == case["cid_v0"]


def test_hidden_files_skipped_like_ipfs_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "visible").write_text("x")
    plain = import_path(tmp_path / "d", NullSink()).cid
    (tmp_path / "d" / ".hidden").write_text("secret")
    assert import_path(tmp_path / "d", NullSink()).cid == plain
    assert import_path(tmp_path / "d", NullSink(), ImportOptions(include_hidden=True)).cid != plain


def test_directory_round_trip_through_store(store: BlockStore, tmp_path: Path) -> None:
    case = JS_VECTORS["directories"][2]
    _materialise(case["tree"], tmp_path / "src")
    os.symlink("z", tmp_path / "src" / "root" / "link-to-z")
    node = add_path(store, tmp_path / "src" / "root")
    get_path(store, node.cid, tmp_path / "out")
    for rel, size in case["tree"].items():
        out = tmp_path / "out" / Path(rel).relative_to("root") if rel != "root" else tmp_path / "out"
        if size is None:
            assert out.is_dir()
        else:
            assert out.read_bytes() == seeded_bytes(rel, size)
    assert os.readlink(tmp_path / "out" / "link-to-z") == "z"
    assert import_path(tmp_path / "out", NullSink()).cid == node.cid


def test_large_file_round_trip(store: BlockStore, tmp_path: Path) -> None:
    data = seeded_bytes("large", 3 * 262144 + 5)
    (tmp_path / "f").write_bytes(data)
    node = add_path(store, tmp_path / "f")
    assert b"".join(cat(store, node.cid)) == data
    assert node.filesize == len(data)


def _directory_naming(store: BlockStore, name: str) -> CID:
    """A stored directory block with one entry called ``name`` (a 7-byte file), e.g. a hostile one."""
    leaf = CID.for_block(b"payload")
    store.put(leaf, b"payload")
    block = PBNode(links=[PBLink(leaf, name, 7)], data=DIRECTORY_DATA).encode()
    root = CID.for_block(block, 0x70)
    store.put(root, block)
    return root


@pytest.mark.parametrize("bad_name", ["..", ".", "a/b", "", "x\x00y"])
def test_hostile_directory_names_are_refused(store: BlockStore, tmp_path: Path, bad_name: str) -> None:
    root = _directory_naming(store, bad_name)
    with pytest.raises(UnixFSError, match="unsafe entry name"):
        get_path(store, root, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "payload").exists()


def test_duplicate_directory_names_are_refused(store: BlockStore, tmp_path: Path) -> None:
    leaf = CID.for_block(b"payload")
    store.put(leaf, b"payload")
    block = PBNode(links=[PBLink(leaf, "x", 7), PBLink(leaf, "x", 7)], data=DIRECTORY_DATA).encode()
    root = CID.for_block(block, 0x70)
    store.put(root, block)
    with pytest.raises(UnixFSError, match="twice"):
        get_path(store, root, tmp_path / "out")


def test_failed_export_leaves_nothing_behind(store: BlockStore, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(seeded_bytes("a", 300_000))
    node = add_path(store, tmp_path / "src")
    store.delete(next(cid for cid in store.cids() if cid.codec == 0x55))
    with pytest.raises(Exception, match="not in the local store"):
        get_path(store, node.cid, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks", "src"]


def test_import_refuses_special_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnixFSError, match="only regular files"):
        import_path(tmp_path / "fifo", NullSink())
    with pytest.raises(UnixFSError, match="no such file"):
        import_path(tmp_path / "missing", NullSink())


def test_two_gib_import_runs_in_bounded_memory() -> None:
    """A 2 GiB stream is imported by a child process whose peak RSS stays small."""
    script = (
        "import re\n"
        "from storage.unixfs.importer import FileBuilder, NullSink\n"
        "b = FileBuilder(NullSink())\n"
        "chunk = bytearray(262144)\n"
        "for i in range(8192):\n"
        "    chunk[:8] = i.to_bytes(8, 'big')\n"
        "    b.add_chunk(bytes(chunk))\n"
        "root = b.finish()\n"
        # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report pytest's own peak
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print(root.filesize, hwm)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    filesize, peak_kib = map(int, out.stdout.split())
    assert filesize == 2 << 30
    assert peak_kib < 120 * 1024, f"peak RSS {peak_kib} KiB for a 2 GiB import"


@pytest.mark.parametrize("bad_name", ["..", "a/b", "x\x00y"])
def test_export_into_a_discarded_directory_writes_in_place_and_still_refuses_hostile_names(
    store: BlockStore, tmp_path: Path, bad_name: str
) -> None:
    """atomic=False (a job's workspace): no scratch directory beside the target, same checks."""
    (tmp_path / "src" / "d").mkdir(parents=True)
    (tmp_path / "src" / "d" / "f").write_bytes(b"data")
    node = add_path(store, tmp_path / "src")
    (tmp_path / "ws").mkdir()
    get_path(store, node.cid, tmp_path / "ws" / "in", atomic=False)
    assert (tmp_path / "ws" / "in" / "d" / "f").read_bytes() == b"data"
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["in"]  # nothing made beside it
    with pytest.raises(UnixFSError, match="exists already"):
        get_path(store, node.cid, tmp_path / "ws" / "in" / "d" / "f", atomic=False)
    root = _directory_naming(store, bad_name)
    with pytest.raises(UnixFSError, match="unsafe entry name"):
        get_path(store, root, tmp_path / "ws" / "bad", atomic=False)
    assert not (tmp_path / "payload").exists() and not (tmp_path / "ws" / "payload").exists()
