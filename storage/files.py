"""Files in and out of a block store: the operations behind ``mycel put`` and ``get``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from storage.blockstore import BlockStore
from storage.cid import CID
from storage.leases import PinLease
from storage.unixfs.exporter import export_path, file_size, iter_file
from storage.unixfs.importer import ImportedNode, ImportOptions, ProgressCallback, import_path, import_stream


def add_path(
    store: BlockStore,
    path: str | os.PathLike[str],
    *,
    pin: bool = True,
    options: ImportOptions | None = None,
    progress: ProgressCallback | None = None,
    name: str = "",
    lease: PinLease | None = None,
) -> ImportedNode:
    """Import a file or directory into ``store``; pin its root once every block is in.

    The pin is the commit point: a crash before it leaves only unpinned blocks, which
    GC frees, never a pinned partial file. With ``lease`` the pin is held for that peer
    (see :meth:`~storage.blockstore.WriteBatch.commit_pinned`).
    """
    # the session is held through the pin, or a GC between the two would take the blocks
    with store.import_session(), store.batch(trusted=True) as batch:
        node = import_path(path, batch, options, progress)
        if pin:  # with the last blocks, in one transaction
            batch.commit_pinned(node.cid, name or os.path.basename(os.fspath(path)), lease)
    return node


def add_stream(
    store: BlockStore,
    stream: BinaryIO,
    *,
    pin: bool = True,
    options: ImportOptions | None = None,
    name: str = "",
    lease: PinLease | None = None,
) -> ImportedNode:
    with store.import_session(), store.batch(trusted=True) as batch:
        node = import_stream(stream, batch, options)
        if pin:
            batch.commit_pinned(node.cid, name, lease)
    return node


def cat(store: BlockStore, cid: CID) -> Iterator[bytes]:
    """A stored file's bytes, every block verified."""
    return iter_file(store.get, cid)


def size_of(store: BlockStore, cid: CID) -> int:
    return file_size(store.get, cid)


def get_path(store: BlockStore, cid: CID, dest: str | os.PathLike[str], *, atomic: bool = True) -> None:
    """Write a stored file or directory to ``dest`` (atomically unless told not to, every block verified)."""
    export_path(store.get, cid, dest, atomic=atomic)
