"""Typed storage errors.

Every error a user can hit says what went wrong and what to do next; the CLI prints
``str(error)`` as its one line, so messages are written to stand alone.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class for everything storage/ raises on bad input or a bad store."""


class InvalidCIDError(StorageError, ValueError):
    """A CID string or byte form could not be parsed."""


class CodecError(StorageError, ValueError):
    """A block could not be encoded or decoded with its codec (dag-cbor, dag-pb, UnixFS)."""


class BlockVerificationError(StorageError):
    """Bytes do not hash to the CID they are stored or offered under.

    Raised on ``put`` (nothing is written) and on ``get`` when a block was corrupted
    at rest (the block is never returned).
    """

    def __init__(self, cid: object, detail: str) -> None:
        super().__init__(f"block {cid} failed verification: {detail}")
        self.cid = cid


class BlockNotFoundError(StorageError, KeyError):
    """The store holds no block under this CID."""

    def __init__(self, cid: object) -> None:
        super().__init__(f"block {cid} is not in the local store")
        self.cid = cid

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class IncompleteDAGError(StorageError):
    """A DAG is missing blocks that an operation (pin, export) needs."""

    def __init__(self, root: object, missing: object) -> None:
        super().__init__(f"DAG {root} is incomplete: block {missing} is missing from the local store")
        self.root = root
        self.missing = missing


class QuotaExceededError(StorageError):
    """Writing would take the store past its configured quota."""


class CarFormatError(StorageError, ValueError):
    """A CAR file is truncated or malformed."""


class UnixFSError(StorageError):
    """A UnixFS DAG cannot be imported or exported as asked."""


class PinQuotaExceededError(QuotaExceededError):
    """A pin for a remote peer would take what this node holds on that peer's behalf past its quota."""

    def __init__(self, owner: str, held: int, adding: int, quota: int) -> None:
        super().__init__(
            f"peer {owner} already has {held} bytes pinned here and this pin needs {adding} more, "
            f"over its quota of {quota} bytes (storage.remote_pin_quota_bytes)"
        )
        self.owner = owner
        self.held = held
        self.adding = adding
        self.quota = quota
