"""Read UnixFS DAGs back out: stream a file's bytes, or write a file/directory tree.

Every block comes through a ``load`` function that verifies it (the block store's
``get``), so corrupted data is never written out. A directory DAG is untrusted input:
entry names that could climb out of the destination (``..``, ``/``, duplicates that
would write through a symlink) are refused before anything is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from storage import dagpb
from storage.cid import CID, DAG_PB, RAW
from storage.errors import UnixFSError
from storage.unixfs.data import NodeType, UnixFSData
from storage.unixfs.data import decode as decode_unixfs

Loader = Callable[[CID], bytes]


def node_kind(load: Loader, cid: CID) -> NodeType:
    """FILE, DIRECTORY or SYMLINK for a UnixFS root (raw blocks are files)."""
    if cid.codec == RAW:
        return NodeType.FILE
    _, meta = _pb_unixfs(load, cid)
    return NodeType.FILE if meta.type == NodeType.RAW else meta.type


def iter_file(load: Loader, root: CID) -> Iterator[bytes]:
    """The content of a UnixFS file, in order, one block's worth at a time."""
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid.codec == RAW:
            yield load(cid)
            continue
        node, meta = _pb_unixfs(load, cid)
        if meta.type not in (NodeType.FILE, NodeType.RAW):
            raise UnixFSError(f"{cid} is a UnixFS {meta.type.name.lower()}, not a file")
        if meta.data:
            yield meta.data
        stack.extend(link.hash for link in reversed(node.links))


def file_size(load: Loader, root: CID) -> int:
    if root.codec == RAW:
        return len(load(root))
    _, meta = _pb_unixfs(load, root)
    if meta.filesize is not None:
        return meta.filesize
    return len(meta.data or b"") + sum(meta.blocksizes)


def list_directory(load: Loader, cid: CID) -> list[tuple[str, CID]]:
    node, meta = _pb_unixfs(load, cid)
    if meta.type == NodeType.HAMT_SHARD:
        raise UnixFSError(f"{cid} is a sharded (HAMT) directory, which mycelnet cannot read yet")
    if meta.type != NodeType.DIRECTORY:
        raise UnixFSError(f"{cid} is not a directory")
    entries: list[tuple[str, CID]] = []
    seen: set[str] = set()
    for link in node.links:
        name = link.name or ""
        if not name or name in (".", "..") or "/" in name or "\x00" in name:
            raise UnixFSError(f"directory {cid} has an unsafe entry name {name!r}; refusing to export it")
        if name in seen:
            raise UnixFSError(f"directory {cid} lists {name!r} twice; refusing to export it")
        seen.add(name)
        entries.append((name, link.hash))
    return entries


def export_path(load: Loader, root: CID, dest: str | os.PathLike[str], *, atomic: bool = True) -> None:
    """Write the file, directory or symlink under ``root`` to ``dest``.

    Output appears atomically: it is built beside ``dest`` and renamed into place only
    once every block has been read and verified, so a failure leaves nothing half-made.
    ``atomic=False`` writes straight to ``dest``, for a caller that discards the whole
    directory around it on failure (a job's workspace): the scratch directory's create and
    remove cost milliseconds on a disk mounted with ``discard``, per input of every job.
    """
    target = Path(dest)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir() and not target.is_symlink():
        raise UnixFSError(f"{target} is an existing directory; choose a new path")
    if not atomic:
        if os.path.lexists(target):
            raise UnixFSError(f"{target} exists already; choose a new path")
        _export_into(load, root, target)
        return
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        staged = scratch / "out"
        _export_into(load, root, staged)
        os.replace(staged, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _export_into(load: Loader, root: CID, dest: Path) -> None:
    kind = node_kind(load, root)
    if kind == NodeType.FILE:
        with open(dest, "wb") as out:
            for chunk in iter_file(load, root):
                out.write(chunk)
    elif kind == NodeType.DIRECTORY:
        dest.mkdir()
        for name, child in list_directory(load, root):
            _export_into(load, child, dest / name)
    elif kind == NodeType.SYMLINK:
        _, meta = _pb_unixfs(load, root)
        os.symlink(os.fsdecode(meta.data or b""), dest)
    else:
        raise UnixFSError(f"{root}: UnixFS {kind.name.lower()} nodes cannot be exported")


def _pb_unixfs(load: Loader, cid: CID) -> tuple[dagpb.PBNode, UnixFSData]:
    if cid.codec != DAG_PB:
        raise UnixFSError(f"{cid} is a {cid.codec_name} block, not UnixFS (dag-pb or raw)")
    node = dagpb.decode(load(cid))
    if node.data is None:
        raise UnixFSError(f"{cid} is a dag-pb node without UnixFS data")
    return node, decode_unixfs(node.data)
