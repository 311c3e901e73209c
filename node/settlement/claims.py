"""Claim state in LMDB: a restart neither loses a claim nor sends it twice.

A claim is the client's signed JobPayment for a job this node delivered, exactly as signed.
It moves pending -> submitted (the signed transaction's hash is written *before* the
transaction is sent) -> settled, or -> failed with the ledger's reason. A submitted claim
whose transaction never landed goes back to pending only after the chain says its nonce
is still unused; the contract itself refuses a second payment of one nonce.

Beside the claims live the node's evidence of unpaid work: a ``Delivery`` for every paid job
it ran (the client's commitment, the signed receipt, the amount the receipt earns), kept until
a payment for it arrives; and the refuse-list, clients this node no longer works for because
a delivery of theirs went unpaid past its commitment's expiry or was paid short.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from contracts.authorization import JobPayment, Signed
from contracts.claim import RESULT_CID_PREFIX, ClaimRequest
from storage.records import RecordTables, Writer


class ClaimState(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    FAILED = "failed"


@dataclass
class Claim:
    job_id: str
    chain_job_id: bytes
    client: str
    node: str
    amount: int
    expiry: int
    nonce: int
    v: int
    r: bytes
    s: bytes
    result_cid: bytes
    receipt_hash: bytes
    state: ClaimState = ClaimState.PENDING
    tx_hash: str = ""
    block: int = 0
    gas: int = 0  # this claim's share of its transaction's gas
    attempts: int = 0
    error: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @classmethod
    def of(cls, job_id: str, signed: Signed) -> Claim:
        """The claim of a client's signed payment, unchanged (the ledger pays nothing else)."""
        p = signed.record
        if not isinstance(p, JobPayment):
            raise TypeError("only a JobPayment can be claimed")
        return cls(job_id=job_id, chain_job_id=p.job_id, client=p.client, node=p.node, amount=p.amount,
                   expiry=p.expiry, nonce=p.nonce, v=signed.v, r=signed.r, s=signed.s,
                   result_cid=RESULT_CID_PREFIX + p.result_digest, receipt_hash=p.receipt_hash)  # fmt: skip

    def request(self) -> ClaimRequest:
        payment = JobPayment(self.chain_job_id, self.client, self.node, self.amount, self.receipt_hash,
                             self.result_cid[len(RESULT_CID_PREFIX) :], self.expiry, self.nonce)  # fmt: skip
        return ClaimRequest(Signed(payment, self.v, self.r, self.s))

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["state"] = self.state.value
        record["amount"] = str(record["amount"])  # wei can exceed DAG-CBOR's 64-bit integers
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Claim:
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}  # earlier records had more
        return cls(**{**known, "state": ClaimState(record["state"]), "amount": int(record["amount"])})

    def summary(self) -> dict[str, Any]:
        """The JSON shape of GET /v1/ledger/claims."""
        return {
            "job_id": self.job_id,
            "chain_job_id": "0x" + self.chain_job_id.hex(),
            "client": self.client,
            "amount": self.amount,
            "state": self.state.value,
            "tx_hash": self.tx_hash,
            "block": self.block,
            "gas": self.gas,
            "attempts": self.attempts,
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


# Open claims (pending, submitted) live apart from finished ones, so the submitter's rounds and
# every new claim read only the few open ones, however long the node's history grows.
_TABLE = {ClaimState.PENDING: "open", ClaimState.SUBMITTED: "open", ClaimState.SETTLED: "settled",
          ClaimState.FAILED: "failed"}  # fmt: skip
_TABLES = ("open", "settled", "failed")


@dataclass
class Delivery:
    """Evidence of a paid job this node ran: what the client offered and what the node delivered."""

    job_id: str
    client: str
    commitment: bytes  # the client's signed JobCommitment envelope, as the offer carried it
    receipt: bytes  # this node's signed receipt
    result_cid: bytes
    earned: int  # wei: amount_for(the receipt's CPU-seconds, this node's price, the commitment's maximum)
    expiry: int  # the commitment's: a payment after it could not be claimed
    delivered_at: float = field(default_factory=time.time)

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "earned": str(self.earned)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Delivery:
        return cls(**{**record, "earned": int(record["earned"])})


class ClaimStore:
    def __init__(self, path: Path) -> None:
        self._tables = RecordTables(path, (*_TABLES, "delivered", "refused"))

    # -- evidence and the refuse-list -----------------------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        self._tables.put("delivered", delivery.job_id, delivery.to_record())

    def delivery(self, job_id: str) -> Delivery | None:
        record = self._tables.get("delivered", job_id)
        return None if record is None else Delivery.from_record(record)

    def paid(self, claim: Claim) -> bool:
        """Record the claim of a delivery and drop the delivery in the same transaction;
        False (nothing changed) if this job already has a claim."""

        def change(tables: Writer) -> bool:
            if any(tables.has(table, claim.job_id) for table in _TABLES):
                return False
            tables.delete("delivered", claim.job_id)
            return tables.put(_TABLE[claim.state], claim.job_id, claim.to_record())

        return self._tables.write(change)

    def unpaid(self, client: str | None = None) -> list[Delivery]:
        found = (Delivery.from_record(r) for r in self._tables.values("delivered"))
        return sorted((d for d in found if client is None or d.client == client), key=lambda d: d.delivered_at)

    def refuse(self, client: str, reason: str) -> None:
        self._tables.put("refused", client, {"client": client, "reason": reason, "at": time.time()})

    def refusal(self, client: str) -> str | None:
        record = self._tables.get("refused", client)
        return None if record is None else str(record["reason"])

    def refused(self) -> list[dict[str, Any]]:
        return list(self._tables.values("refused"))

    # -- claims ---------------------------------------------------------------------------

    def add(self, claim: Claim) -> bool:
        """Record a new claim; False (and nothing changed) if this job already has one."""

        def change(tables: Writer) -> bool:
            if any(tables.has(table, claim.job_id) for table in _TABLES):
                return False
            return tables.put(_TABLE[claim.state], claim.job_id, claim.to_record())

        return self._tables.write(change)

    def save(self, claims: Iterable[Claim]) -> None:
        """Write all of them in one transaction (a batch changes state together)."""
        now = time.time()
        batch = list(claims)
        for claim in batch:
            claim.updated_at = now

        def change(tables: Writer) -> None:
            for claim in batch:
                home = _TABLE[claim.state]
                for table in _TABLES:
                    if table != home:
                        tables.delete(table, claim.job_id)
                tables.put(home, claim.job_id, claim.to_record())

        self._tables.write(change)

    def get(self, job_id: str) -> Claim | None:
        for table in _TABLES:
            record = self._tables.get(table, job_id)
            if record is not None:
                return Claim.from_record(record)
        return None

    def all(self) -> list[Claim]:
        return [Claim.from_record(record) for table in _TABLES for record in self._tables.values(table)]

    def in_state(self, *states: ClaimState) -> list[Claim]:
        tables = sorted({_TABLE[state] for state in states})
        claims = (Claim.from_record(record) for table in tables for record in self._tables.values(table))
        return sorted((c for c in claims if c.state in states), key=lambda c: c.created_at)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in ClaimState), 0)
        for claim in self.in_state(ClaimState.PENDING, ClaimState.SUBMITTED):
            counts[claim.state.value] += 1
        counts["settled"], counts["failed"] = self._tables.count("settled"), self._tables.count("failed")
        counts["unpaid"], counts["refused_clients"] = self._tables.count("delivered"), self._tables.count("refused")
        return counts

    def close(self) -> None:
        self._tables.close()
