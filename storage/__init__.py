"""Content addressing for mycelnet: CIDs, codecs, UnixFS, and the verified LMDB block store.

Knows nothing about networks or HTTP; everything else builds on it.
"""

from storage.blockstore import BlockStore, GCResult, Pin, StoreStats
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
