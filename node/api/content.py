"""Send a stored file or directory (as tar) to an HTTP client, never a wrong body that looks right.

Every block is re-hashed as it is read (whatever ``storage.verify_on_get`` says), and once a 200
status line is out nothing can take it back. So content up to ``VERIFIED_BEFORE_HEADERS`` bytes is
read and verified whole before the headers: a corrupt block answers 502 ``corrupt_block`` naming
the CID. Larger content is streamed; a corrupt block met on the way aborts the connection
(:class:`StreamAborted`), so the client sees a truncated transfer, never a complete-looking one.

A directory is streamed as a tar built on the fly from the DAG: nothing is staged on disk, so
concurrent downloads cost no scratch space. The walk is iterative and bounded (depth, entries),
because a DAG that links one subdirectory many times expands to far more entries than blocks.
"""

from __future__ import annotations

import asyncio
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web

from node.api.errors import ApiError, StreamAborted
from storage import dagpb
from storage.cid import CID
from storage.errors import BlockVerificationError, UnixFSError
from storage.unixfs.data import NodeType
from storage.unixfs.data import decode as decode_unixfs
from storage.unixfs.exporter import Loader, file_size, iter_file, list_directory, node_kind

if TYPE_CHECKING:
    from storage.blockstore import BlockStore

VERIFIED_BEFORE_HEADERS = 1 << 20  # content up to this size is verified whole before the status line
PULL_BYTES = 256 << 10  # bytes gathered per executor hop while streaming
MAX_TAR_DEPTH = 256
MAX_TAR_ENTRIES = 1_000_000
_BLOCK = tarfile.BLOCKSIZE


class PrivateBlock(Exception):
    """A block of the content belongs to a private dataset here (a private block shared with
    public content stays private: "private wins")."""

    def __init__(self, cid: CID) -> None:
        super().__init__(f"{cid} belongs to a private dataset")
        self.cid = cid


def _verifying_loader(store: BlockStore, private: Callable[[CID], bool] | None) -> Loader:
    def load(cid: CID) -> bytes:
        if private is not None and private(cid):
            raise PrivateBlock(cid)
        return store.get(cid, verify=True)

    return load


def _corrupt(root: CID, exc: BlockVerificationError) -> ApiError:
    return ApiError(
        502,
        "corrupt_block",
        f"the stored block {exc.cid} of {root} is corrupt on this node's disk; run `mycel store verify` "
        "on the node, then delete and re-add or re-fetch the data, or download it from another node",
    )


def _pull(chunks: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    """Up to about ``limit`` bytes from ``chunks`` (in a thread: reading hashes every block);
    True when ``chunks`` is exhausted."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(parts), False
    return b"".join(parts), True


async def send_content(
    request: web.Request, store: BlockStore, root: CID, private: Callable[[CID], bool] | None = None
) -> web.StreamResponse:
    """A file as octet-stream, a directory as tar; ``root`` must be complete in ``store``.

    ``private`` says whether a block belongs to a private dataset: such a block is never sent
    (403 before the headers; after them, the transfer is aborted like a corrupt one)."""
    loop = asyncio.get_running_loop()
    load = _verifying_loader(store, private)
    try:
        kind = await loop.run_in_executor(None, node_kind, load, root)
        if kind == NodeType.DIRECTORY:
            chunks, content_type = iter_tar(load, root, int(time.time())), "application/x-tar"
        elif kind == NodeType.FILE:
            chunks, content_type = iter_file(load, root), "application/octet-stream"
        else:
            raise ApiError(400, "not_a_file", f"{root} is a UnixFS {kind.name.lower()}")
        head, complete = await loop.run_in_executor(None, _pull, chunks, VERIFIED_BEFORE_HEADERS)
    except BlockVerificationError as exc:
        raise _corrupt(root, exc) from None
    except PrivateBlock as exc:
        raise ApiError(
            403, "private_data", f"{root} contains {exc.cid}, a block of a private dataset: it is not served"
        ) from None
    headers = {"Content-Type": content_type, "X-Content-CID": str(root)}
    if complete:
        return web.Response(body=head, headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    await response.write(head)
    done = False
    while not done:
        try:
            part, done = await loop.run_in_executor(None, _pull, chunks, PULL_BYTES)
        except Exception as exc:  # any failure now: the status line is out, only an abort is honest
            raise StreamAborted(f"aborted the download of {root} after the headers: {exc}") from exc
        await response.write(part)
    await response.write_eof()
    return response


def iter_tar(load: Loader, root: CID, mtime: int) -> Iterator[bytes]:
    """A ustar/pax archive of the directory ``root``, entries relative to it, in DAG order."""
    stack: list[tuple[str, CID, int]] = [(name, cid, 1) for name, cid in reversed(list_directory(load, root))]
    entries = 0
    while stack:
        path, cid, depth = stack.pop()
        entries += 1
        if entries > MAX_TAR_ENTRIES or depth > MAX_TAR_DEPTH:
            raise UnixFSError(f"{root} expands to more than {MAX_TAR_ENTRIES} entries or {MAX_TAR_DEPTH} levels")
        kind = node_kind(load, cid)
        info = tarfile.TarInfo(path)
        info.mtime = mtime
        if kind == NodeType.DIRECTORY:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            yield _header(info)
            stack.extend((f"{path}/{name}", child, depth + 1) for name, child in reversed(list_directory(load, cid)))
        elif kind == NodeType.FILE:
            info.size, info.mode = file_size(load, cid), 0o644
            yield _header(info)
            yield from _file_body(load, cid, info.size)
        elif kind == NodeType.SYMLINK:
            info.type, info.mode = tarfile.SYMTYPE, 0o777
            info.linkname = _symlink_target(load, cid)
            yield _header(info)
        else:
            raise UnixFSError(f"{cid} at {path!r}: UnixFS {kind.name.lower()} nodes cannot be exported")
    yield b"\0" * (2 * _BLOCK)


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file_body(load: Loader, cid: CID, size: int) -> Iterator[bytes]:
    """The file's bytes, padded to a tar block; a file whose blocks disagree with its recorded
    size would desynchronise the archive, so it stops the stream instead."""
    sent = 0
    for chunk in iter_file(load, cid):
        sent += len(chunk)
        if sent > size:
            break
        yield chunk
    if sent != size:
        raise UnixFSError(f"file {cid} records {size} bytes but its blocks hold a different amount")
    yield b"\0" * (-size % _BLOCK)


def _symlink_target(load: Loader, cid: CID) -> str:
    meta = decode_unixfs(dagpb.decode(load(cid)).data or b"")
    return (meta.data or b"").decode("utf-8", "surrogateescape")
