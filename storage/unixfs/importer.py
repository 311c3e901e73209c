"""Import files and directories as UnixFS DAGs whose root CIDs match ``ipfs add``.

Layout (Kubo's defaults): fixed 256 KiB chunks, balanced tree of at most 174 links per
node; with CIDv1 the leaves are raw blocks (``ipfs add --cid-version=1``), with CIDv0
they are dag-pb UnixFS file nodes (plain ``ipfs add``). A file of one chunk is that
chunk itself. Directories list their entries sorted by name bytes; hidden entries are
skipped unless asked for, as ``ipfs add -r`` does.

The file builder streams: it keeps one pending list of at most 174 links per tree
level, so memory stays bounded whatever the file size (a 2 GiB file needs 3 levels).
Blocks go to a :class:`BlockSink` as they are made; the caller decides where they land.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from storage.cid import CID, DAG_PB, RAW
from storage.dagpb import PBLink, PBNode
from storage.errors import UnixFSError
from storage.unixfs.data import DIRECTORY_DATA, NodeType, UnixFSData

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
# Kubo shards a directory (HAMT) once its estimated node size passes this; we refuse instead.
_DIRECTORY_SHARD_THRESHOLD = 256 * 1024

_V1_RAW_PREFIX = b"\x01\x55\x12\x20"
_V1_PB_PREFIX = b"\x01\x70\x12\x20"
_V0_PREFIX = b"\x12\x20"


class BlockSink(Protocol):
    """Where imported blocks go (a block store batch, a CAR writer, or nowhere)."""

    def put_block(self, cid: CID, data: bytes) -> None: ...


class NullSink:
    """Discards blocks: computing a CID without storing anything (``mycel cid``)."""

    def put_block(self, cid: CID, data: bytes) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ImportedNode:
    cid: CID
    tsize: int  # bytes of every block in the sub-DAG (what a parent link records)
    filesize: int  # bytes of file content under this node (0 for directories)
    is_raw_leaf: bool = False


@dataclass(frozen=True, slots=True)
class ImportOptions:
    cid_version: int = 1
    chunk_size: int = CHUNK_SIZE
    max_links: int = MAX_LINKS
    include_hidden: bool = False

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise UnixFSError("cid_version must be 0 or 1")
        if self.chunk_size <= 0 or self.max_links < 2:
            raise UnixFSError("chunk_size must be positive and max_links at least 2")


class FileBuilder:
    """Builds one file's balanced DAG from its chunks, emitting blocks as it goes."""

    def __init__(self, sink: BlockSink, options: ImportOptions | None = None) -> None:
        self._sink = sink
        self._options = options or ImportOptions()
        self._levels: list[list[ImportedNode]] = [[]]
        self._chunks = 0

    def add_chunk(self, chunk: bytes) -> None:
        self._chunks += 1
        self._push(0, self._leaf(chunk))

    def finish(self) -> ImportedNode:
        if self._chunks == 0:
            self.add_chunk(b"")
        levels = self._levels
        depth = 0
        while True:
            pending = levels[depth]
            higher = any(levels[d] for d in range(depth + 1, len(levels)))
            if len(pending) == 1 and not higher:
                return pending[0]
            if pending:
                node = self._parent(pending)
                levels[depth] = []
                if depth + 1 == len(levels):
                    levels.append([])
                levels[depth + 1].append(node)
            depth += 1

    # -- internals ---------------------------------------------------------------
    def _push(self, depth: int, node: ImportedNode) -> None:
        levels = self._levels
        levels[depth].append(node)
        if len(levels[depth]) == self._options.max_links:
            parent = self._parent(levels[depth])
            levels[depth] = []
            if depth + 1 == len(levels):
                levels.append([])
            self._push(depth + 1, parent)

    def _leaf(self, chunk: bytes) -> ImportedNode:
        if self._options.cid_version == 1:
            cid = CID(_V1_RAW_PREFIX + hashlib.sha256(chunk).digest())
            self._sink.put_block(cid, chunk)
            return ImportedNode(cid, len(chunk), len(chunk), is_raw_leaf=True)
        data = UnixFSData(NodeType.FILE, data=chunk, filesize=len(chunk)).encode()
        block = PBNode(data=data).encode()
        cid = CID(_V0_PREFIX + hashlib.sha256(block).digest())
        self._sink.put_block(cid, block)
        return ImportedNode(cid, len(block), len(chunk))

    def _parent(self, children: list[ImportedNode]) -> ImportedNode:
        filesize = sum(child.filesize for child in children)
        data = UnixFSData(NodeType.FILE, filesize=filesize, blocksizes=tuple(c.filesize for c in children))
        links = [PBLink(child.cid, "", child.tsize) for child in children]
        block = PBNode(links=links, data=data.encode()).encode()
        cid = _pb_cid(block, self._options.cid_version)
        self._sink.put_block(cid, block)
        return ImportedNode(cid, len(block) + sum(c.tsize for c in children), filesize)


def chunks_of(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Fixed-size chunks of a stream; short reads (pipes, sockets) are topped up."""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            return
        while len(chunk) < chunk_size:
            more = stream.read(chunk_size - len(chunk))
            if not more:
                break
            chunk += more
        yield chunk


def import_chunks(chunks: Iterable[bytes], sink: BlockSink, options: ImportOptions | None = None) -> ImportedNode:
    builder = FileBuilder(sink, options)
    for chunk in chunks:
        builder.add_chunk(chunk)
    return builder.finish()


def import_bytes(data: bytes, sink: BlockSink, options: ImportOptions | None = None) -> ImportedNode:
    size = (options or ImportOptions()).chunk_size
    return import_chunks((data[i : i + size] for i in range(0, len(data), size)), sink, options)


def import_stream(stream: BinaryIO, sink: BlockSink, options: ImportOptions | None = None) -> ImportedNode:
    return import_chunks(chunks_of(stream, (options or ImportOptions()).chunk_size), sink, options)


ProgressCallback = Callable[[int], None]


def import_path(
    path: str | os.PathLike[str],
    sink: BlockSink,
    options: ImportOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ImportedNode:
    """Import a file, directory (recursively) or symlink as ``ipfs add -r`` would."""
    options = options or ImportOptions()
    target = Path(path)
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        raise UnixFSError(f"{target}: no such file or directory") from None
    except PermissionError:
        raise UnixFSError(f"{target}: permission denied") from None
    if stat.S_ISLNK(mode):
        return _import_symlink(target, sink, options)
    if stat.S_ISDIR(mode):
        return _import_directory(target, sink, options, progress)
    if stat.S_ISREG(mode):
        return _import_file(target, sink, options, progress)
    raise UnixFSError(f"{target}: only regular files, directories and symlinks can be imported")


def _import_file(
    path: Path, sink: BlockSink, options: ImportOptions, progress: ProgressCallback | None
) -> ImportedNode:
    builder = FileBuilder(sink, options)
    try:
        with open(path, "rb", buffering=0) as stream:
            for chunk in chunks_of(stream, options.chunk_size):
                builder.add_chunk(chunk)
                if progress is not None:
                    progress(len(chunk))
    except PermissionError:
        raise UnixFSError(f"{path}: permission denied") from None
    return builder.finish()


def _import_symlink(path: Path, sink: BlockSink, options: ImportOptions) -> ImportedNode:
    data = UnixFSData(NodeType.SYMLINK, data=os.fsencode(os.readlink(path))).encode()
    block = PBNode(data=data).encode()
    cid = _pb_cid(block, options.cid_version)
    sink.put_block(cid, block)
    return ImportedNode(cid, len(block), 0)


def _import_directory(
    path: Path, sink: BlockSink, options: ImportOptions, progress: ProgressCallback | None
) -> ImportedNode:
    try:
        names = os.listdir(path)
    except PermissionError:
        raise UnixFSError(f"{path}: permission denied") from None
    entries = sorted((os.fsencode(name), name) for name in names)
    links: list[PBLink] = []
    estimated = 0
    for encoded_name, name in entries:
        if name.startswith(".") and not options.include_hidden:
            continue
        child = import_path(path / name, sink, options, progress)
        links.append(PBLink(child.cid, name, child.tsize))
        estimated += len(encoded_name) + len(bytes(child.cid))
    if estimated > _DIRECTORY_SHARD_THRESHOLD:
        raise UnixFSError(
            f"{path}: directory too large ({len(links)} entries): IPFS would shard it (HAMT), "
            "which mycelnet does not support yet; split it into subdirectories"
        )
    return directory_node(links, sink, options.cid_version)


def directory_node(links: list[PBLink], sink: BlockSink, cid_version: int = 1) -> ImportedNode:
    """Write a plain UnixFS directory node over already-imported, named children."""
    ordered = sorted(links, key=lambda link: (link.name or "").encode("utf-8"))
    block = PBNode(links=ordered, data=DIRECTORY_DATA).encode()
    cid = _pb_cid(block, cid_version)
    sink.put_block(cid, block)
    return ImportedNode(cid, len(block) + sum(link.tsize or 0 for link in ordered), 0)


def _pb_cid(block: bytes, cid_version: int) -> CID:
    prefix = _V1_PB_PREFIX if cid_version == 1 else _V0_PREFIX
    return CID(prefix + hashlib.sha256(block).digest())


__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "BlockSink",
    "FileBuilder",
    "ImportOptions",
    "ImportedNode",
    "NullSink",
    "chunks_of",
    "directory_node",
    "import_bytes",
    "import_chunks",
    "import_path",
    "import_stream",
    "RAW",
    "DAG_PB",
]
