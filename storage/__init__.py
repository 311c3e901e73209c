"""Content addressing for mycelnet: CIDs, codecs, UnixFS, and the verified LMDB block store.

Knows nothing about networks or HTTP; everything else builds on it. The block store's names
are imported on first use: CIDs, codecs and UnixFS hashing (what the SDK verifies with) must
import without LMDB, which only a node installs (``mycelnet[node]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.cid import CID, DAG_CBOR, DAG_PB, RAW
from storage.errors import (
    BlockNotFoundError,
    BlockVerificationError,
    CarFormatError,
    CodecError,
    IncompleteDAGError,
    InvalidCIDError,
    QuotaExceededError,
    StorageError,
    UnixFSError,
)

if TYPE_CHECKING:
    from storage.blockstore import BlockStore, GCResult, Pin, StoreStats

_BLOCKSTORE_NAMES = frozenset({"BlockStore", "GCResult", "Pin", "StoreStats"})


def __getattr__(name: str) -> Any:
    """``storage.BlockStore`` and its kin, loaded (with LMDB) only when asked for."""
    if name in _BLOCKSTORE_NAMES:
        from storage import blockstore

        return getattr(blockstore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DAG_CBOR",
    "DAG_PB",
    "RAW",
    "CID",
    "BlockNotFoundError",
    "BlockStore",
    "BlockVerificationError",
    "CarFormatError",
    "CodecError",
    "GCResult",
    "IncompleteDAGError",
    "InvalidCIDError",
    "Pin",
    "QuotaExceededError",
    "StorageError",
    "StoreStats",
    "UnixFSError",
]
