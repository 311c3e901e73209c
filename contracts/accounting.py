"""The arithmetic client and executor share about a job's payment: no keys, no chain.

Split from :mod:`contracts.payment` (which re-exports it) so the SDK can compute what a
receipt earns and what a payment binds without the signing and chain stack, which only a
paying client (``mycelnet[pay]``) or a node installs.
"""

from __future__ import annotations

import hashlib
import math


def chain_job_id(job_id: str) -> bytes:
    """The bytes32 a job is settled under on chain."""
    return hashlib.sha256(b"mycel-job:" + job_id.encode()).digest()


def receipt_hash(signed_receipt: bytes) -> bytes:
    """What a payment binds and the ledger records for a receipt: the sha2-256 digest of its
    block (the digest inside its dag-cbor CID), the same bytes on every node that holds it."""
    return hashlib.sha256(signed_receipt).digest()


def amount_for(cpu_seconds: float, price: int, max_amount: int) -> int:
    """What a receipt's usage earns: price x CPU-seconds, rounded up, at most ``max_amount``.
    Client and executor both compute it, so they agree on the wei without talking."""
    return min(max_amount, math.ceil(price * max(cpu_seconds, 0.0)))
