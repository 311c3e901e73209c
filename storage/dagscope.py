"""Which blocks a trustless-gateway CAR carries, in order: the blocks that prove a content path,
then the terminal entity's ``dag-scope`` (block, entity, all), optionally cut to an
``entity-bytes`` range of a UnixFS file.

Path resolution loads one block per segment and runs before a response starts, so a path that
does not exist is a clean 404 rather than a truncated CAR. The scope walk is an iterative, lazy
generator that loads each block only when it is about to be sent: a 2 GiB DAG streams in
bounded memory, and a byte range never loads a block outside it (a node missing such a block
still answers). With ``dups`` every occurrence is sent, so a DAG that links one subtree many
times could expand without end; the walk stops past ``MAX_CAR_BLOCKS`` sections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from storage import dagcbor, dagpb
from storage.cid import CID, DAG_CBOR, DAG_PB, IDENTITY, RAW
from storage.dag import links_of
from storage.errors import CodecError, StorageError, UnixFSError
from storage.unixfs import hamt
from storage.unixfs.data import NodeType
from storage.unixfs.data import decode as decode_unixfs

Loader = Callable[[CID], bytes]
MAX_PATH_SEGMENTS = 64
MAX_CAR_BLOCKS = 4_000_000  # sections in one CAR (16 TiB of 4 MiB blocks: only a dups=y blow-up gets here)
_HAMT_PREFIX = 2  # hex digits naming a sub-shard in a fanout-256 HAMT (the only fanout in use)


class Scope(Enum):
    BLOCK = "block"
    ENTITY = "entity"
    ALL = "all"


class PathNotFound(StorageError):
    """A content path names something the DAG does not contain."""


class CarTooLarge(StorageError):
    """A CAR walk went past MAX_CAR_BLOCKS sections (a dups=y walk of a heavily shared DAG)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """``entity-bytes=from:to``: inclusive offsets, negative ones from the end, ``to=None`` for ``*``."""

    start: int
    end: int | None

    @classmethod
    def parse(cls, text: str) -> ByteRange:
        """Raises ValueError naming the problem (the caller answers 400)."""
        first, sep, last = text.partition(":")
        if not sep or len(text) > 48:
            raise ValueError(f"entity-bytes must be 'from:to' (e.g. 0:1023, -1024:*), not {text[:48]!r}")
        start = _offset(first, "from")
        end = None if last == "*" else _offset(last, "to")
        if end is not None and start >= 0 and 0 <= end < start:
            raise ValueError(f"entity-bytes {text!r}: 'to' is before 'from'")
        return cls(start, end)

    def resolve(self, size: int) -> tuple[int, int] | None:
        """The inclusive range within an entity of ``size`` bytes, or None when it is empty."""
        start = self.start if self.start >= 0 else max(0, size + self.start)
        end = size - 1 if self.end is None else (self.end if self.end >= 0 else size + self.end)
        end = min(end, size - 1)
        return (start, end) if start <= end else None


def _offset(text: str, what: str) -> int:
    body = text[1:] if text.startswith("-") else text
    if not body.isdigit() or not body.isascii():
        raise ValueError(f"entity-bytes '{what}' must be an integer, not {text[:24]!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A content path walked to its end."""

    path_blocks: tuple[tuple[CID, bytes], ...]  # blocks proving the path, root first, without the terminal
    roots: tuple[CID, ...]  # the logical root of each path prefix (X-Ipfs-Roots)
    terminal: CID
    data: bytes  # the terminal block
    value: Any  # for a path ending inside a dag-cbor block: the value there; else _WHOLE
    in_block: bool  # True when the path ends inside the terminal block (not on a link)


_WHOLE = object()


def load_block(get: Loader) -> Loader:
    """A loader that answers identity CIDs from the CID itself (they are never stored)."""

    def load(cid: CID) -> bytes:
        return cid.digest if cid.hash_code == IDENTITY else get(cid)

    return load


def resolve(load: Loader, root: CID, segments: list[str]) -> Resolved:
    """Walk ``segments`` from ``root`` through UnixFS directories, dag-pb link names and dag-cbor
    maps and lists; raises PathNotFound, or BlockNotFoundError for a block not held here."""
    if len(segments) > MAX_PATH_SEGMENTS:
        raise PathNotFound(f"content paths are limited to {MAX_PATH_SEGMENTS} segments")
    cid, data, value = root, load(root), _WHOLE
    blocks: list[tuple[CID, bytes]] = []
    roots = [root]
    for index, segment in enumerate(segments):
        shown = "/".join(segments[: index + 1])
        if cid.codec == DAG_PB:
            target, shards = _pb_child(load, cid, data, segment, shown)
        elif cid.codec == DAG_CBOR:
            here = dagcbor.decode(data) if value is _WHOLE else value
            step = _cbor_step(here, segment, shown)
            if not isinstance(step, CID):
                value = step
                roots.append(cid)
                continue
            target, shards = step, []
        else:
            raise PathNotFound(f"{shown!r}: {cid} is a {cid.codec_name} block, which has no named links")
        blocks.append((cid, data))
        blocks.extend(shards)
        cid, data, value = target, load(target), _WHOLE
        roots.append(cid)
    return Resolved(tuple(blocks), tuple(roots), cid, data, value, value is not _WHOLE)


def _pb_child(load: Loader, cid: CID, data: bytes, name: str, shown: str) -> tuple[CID, list[tuple[CID, bytes]]]:
    """The link named ``name`` and, in a HAMT-sharded directory, the sub-shards on the way to it."""
    node = _pb(cid, data)
    if node.data is not None and _unixfs_type(node.data) == NodeType.HAMT_SHARD:
        shards, found = hamt.lookup(load, cid, node, name)
        if found is None:
            raise PathNotFound(f"{shown!r}: no entry named {name!r} in the sharded directory {cid}")
        return found, shards
    for link in node.links:
        if link.name == name:
            return link.hash, []
    raise PathNotFound(f"{shown!r}: no entry named {name!r} in {cid}")


def _cbor_step(value: Any, segment: str, shown: str) -> Any:
    if isinstance(value, dict):
        if segment in value:
            return value[segment]
    elif isinstance(value, list) and segment.isdigit() and segment.isascii() and int(segment) < len(value):
        return value[int(segment)]
    raise PathNotFound(f"{shown!r}: no field or index {segment!r} in the dag-cbor value")


def _pb(cid: CID, data: bytes) -> dagpb.PBNode:
    try:
        return dagpb.decode(data)
    except CodecError as exc:
        raise UnixFSError(f"{cid}: {exc}") from None


def _unixfs_type(data: bytes) -> NodeType | None:
    try:
        return decode_unixfs(data).type
    except UnixFSError:
        return None  # dag-pb that is not UnixFS: plain named links


def file_size(cid: CID, data: bytes) -> int | None:
    """The byte size of a UnixFS file rooted at this block, or None when it is not a file."""
    if cid.codec == RAW:
        return len(data)
    if cid.codec != DAG_PB:
        return None
    node = _pb(cid, data)
    if node.data is None:
        return None
    meta = decode_unixfs(node.data)
    if meta.type not in (NodeType.FILE, NodeType.RAW):
        return None
    return meta.filesize if meta.filesize is not None else len(meta.data or b"") + sum(meta.blocksizes)


def car_blocks(
    load: Loader, resolved: Resolved, scope: Scope, span: tuple[int, int] | None, *, dups: bool
) -> Iterator[tuple[CID, bytes]]:
    """Every block of the response in DFS order; ``span`` (resolved entity-bytes) cuts a file.

    Identity CIDs are never sent (their bytes are in the CID). Without ``dups`` each block goes
    once and a repeated one is not walked again."""
    seen: set[CID] = set()
    sent = 0

    def fresh(cid: CID) -> bool:
        nonlocal sent
        if cid.hash_code == IDENTITY:
            return False
        if not dups:
            if cid in seen:
                return False
            seen.add(cid)
        sent += 1
        if sent > MAX_CAR_BLOCKS:
            raise CarTooLarge(f"the CAR would carry more than {MAX_CAR_BLOCKS} blocks; ask with dups=n")
        return True

    for cid, data in resolved.path_blocks:
        if fresh(cid):
            yield cid, data
    terminal, data = resolved.terminal, resolved.data
    if fresh(terminal):
        yield terminal, data
    elif not dups and terminal.hash_code != IDENTITY:
        return  # already sent (and walked) on the path
    if scope == Scope.BLOCK:
        return
    if scope == Scope.ALL:
        children = list(dagcbor.iter_links(resolved.value)) if resolved.in_block else links_of(terminal, data)
        yield from _dfs(load, children, fresh, links_of)
        return
    if resolved.in_block:
        return  # a value inside a dag-cbor block: the block is the entity
    yield from _entity(load, terminal, data, span, fresh)


def _dfs(
    load: Loader, children: list[CID], fresh: Callable[[CID], bool], follow: Callable[[CID, bytes], list[CID]]
) -> Iterator[tuple[CID, bytes]]:
    """Pre-order DFS from ``children``, following ``follow``'s links; a block is loaded when sent."""
    stack = list(reversed(children))
    while stack:
        cid = stack.pop()
        if not fresh(cid):
            continue
        data = load(cid)
        yield cid, data
        stack.extend(reversed(follow(cid, data)))


def _sub_shards(cid: CID, data: bytes) -> list[CID]:
    return [link.hash for link in _pb(cid, data).links if len(link.name or "") == _HAMT_PREFIX]


def _entity(
    load: Loader, cid: CID, data: bytes, span: tuple[int, int] | None, fresh: Callable[[CID], bool]
) -> Iterator[tuple[CID, bytes]]:
    """UnixFS: a file's blocks (within ``span``), a HAMT's shard nodes; anything else is its block."""
    if cid.codec != DAG_PB:
        return
    node = _pb(cid, data)
    kind = _unixfs_type(node.data) if node.data is not None else None
    if kind in (NodeType.FILE, NodeType.RAW):
        yield from _file_range(load, cid, node, span, fresh)
    elif kind == NodeType.HAMT_SHARD:
        yield from _dfs(load, _sub_shards(cid, data), fresh, _sub_shards)


def _file_range(
    load: Loader, root: CID, node: dagpb.PBNode, span: tuple[int, int] | None, fresh: Callable[[CID], bool]
) -> Iterator[tuple[CID, bytes]]:
    """The blocks under a file root whose bytes overlap ``span`` (all of them when None), in order;
    ``blocksizes`` says where each child's bytes start, so no block outside the span is loaded."""
    stack: list[tuple[CID, int]] = list(reversed(_overlapping(root, node, 0, span)))
    while stack:
        cid, offset = stack.pop()
        if not fresh(cid):
            continue
        data = load(cid)
        yield cid, data
        if cid.codec == DAG_PB:
            stack.extend(reversed(_overlapping(cid, _pb(cid, data), offset, span)))


def _overlapping(cid: CID, node: dagpb.PBNode, offset: int, span: tuple[int, int] | None) -> list[tuple[CID, int]]:
    if node.data is None:
        raise UnixFSError(f"{cid} is a dag-pb node without UnixFS data inside a file")
    meta = decode_unixfs(node.data)
    if span is not None and len(meta.blocksizes) != len(node.links):
        raise UnixFSError(f"file node {cid} has {len(node.links)} links but {len(meta.blocksizes)} block sizes")
    start = offset + len(meta.data or b"")
    children = []
    for index, link in enumerate(node.links):
        size = meta.blocksizes[index] if span is not None else 0
        if span is None or (start <= span[1] and start + size - 1 >= span[0]):
            children.append((link.hash, start))
        start += size
    return children


__all__ = ["ByteRange", "CarTooLarge", "PathNotFound", "Resolved", "Scope", "car_blocks", "file_size", "resolve"]
