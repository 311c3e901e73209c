"""Leases: the terms of a pin this node makes on behalf of a remote peer.

A node that runs a job for another peer fetches the job's inputs and stores its result.
Pinned for ever, any peer could make any node store data without end; so such pins carry
a lease: they expire after a TTL, ``gc`` reclaims their blocks once expired (unless
another pin still reaches them), and the bytes held for one peer are capped by a quota.
Pins the operator makes (``mycel put``, local jobs, the requester's own fetches) carry
no lease and are permanent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TTL_SECONDS = 24 * 3600
DEFAULT_QUOTA_BYTES = 8 << 30


@dataclass(frozen=True, slots=True)
class PinLease:
    """A pin held for ``owner`` (a peer ID) until ``expires`` (Unix seconds).

    ``quota`` caps the bytes of unexpired pins held for ``owner``, this one included
    (None: no cap); the store checks it in the transaction that writes the pin.
    """

    owner: str
    expires: int
    quota: int | None = None


@dataclass(frozen=True)
class LeasePolicy:
    """How long remote pins last and how much one peer may have pinned here."""

    ttl_seconds: int = DEFAULT_TTL_SECONDS
    quota_bytes: int | None = DEFAULT_QUOTA_BYTES
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.ttl_seconds < 1:
            raise ValueError(f"the remote pin TTL must be at least 1 second, got {self.ttl_seconds}")
        if self.quota_bytes is not None and self.quota_bytes < 1:
            raise ValueError(f"the remote pin quota must be positive (or None for none), got {self.quota_bytes}")

    def lease_for(self, owner: str) -> PinLease:
        """A lease for a pin made now on behalf of ``owner``."""
        return PinLease(owner, int(self.clock()) + self.ttl_seconds, self.quota_bytes)

    def exhausted(self, held: int) -> bool:
        """Whether a peer holding ``held`` bytes here may have nothing more pinned."""
        return self.quota_bytes is not None and held >= self.quota_bytes
