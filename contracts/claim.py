"""A claim as the ledger contract takes it: the client's signed JobPayment, packed.

Kept apart from the web3 client in ``contracts.ledger`` so a node that stores and reports
claims does not load web3 (seconds of start-up) until it really talks to a chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.authorization import JobPayment, Signed
from contracts.errors import ChainError

RESULT_CID_PREFIX = b"\x01\x70\x12\x20"  # CIDv1, dag-pb, sha2-256, 32 bytes: a job's /out directory


@dataclass(frozen=True)
class ClaimRequest:
    """A claim is the client's signed JobPayment as it stands: the node adds nothing to it, so
    it cannot raise the amount or swap the receipt or the result."""

    signed: Signed

    @property
    def payment(self) -> JobPayment:
        record = self.signed.record
        if not isinstance(record, JobPayment):
            raise ChainError(f"only a JobPayment can be claimed, not a {type(record).__name__}")
        return record

    @property
    def result_cid(self) -> bytes:
        """The binary CID the payment names (a job's /out directory, CIDv1 dag-pb sha2-256)."""
        return RESULT_CID_PREFIX + self.payment.result_digest

    def as_tuple(self) -> tuple[Any, ...]:
        """The contract's packed Claim (see the header of MycelLedger.vy)."""
        p = self.payment
        if len(p.result_digest) != 32 or len(p.receipt_hash) != 32:
            raise ChainError("the receipt hash and the result digest are 32 bytes each")
        if p.amount >= 1 << 128 or p.expiry >= 1 << 64 or p.nonce >= 1 << 64:
            raise ChainError("amount must fit 128 bits, expiry and nonce 64 bits each")
        terms = p.amount << 128 | p.expiry << 64 | p.nonce
        vs = int.from_bytes(self.signed.s, "big") | (self.signed.v - 27) << 255  # EIP-2098
        return (p.job_id, p.client, terms, self.signed.r, vs.to_bytes(32, "big"), p.result_digest, p.receipt_hash)
