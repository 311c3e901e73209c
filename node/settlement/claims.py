"""Claim state in LMDB: a restart neither loses a claim nor sends it twice.

A claim moves pending -> submitted (the signed transaction's hash is written *before* the
transaction is sent) -> settled, or -> failed with the ledger's reason. A submitted claim
whose transaction never landed goes back to pending only after the chain says its nonce
is still unused; the contract itself refuses a second payment of one nonce.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from contracts.authorization import JobAuthorization, SignedAuthorization
from contracts.ledger import ClaimRequest
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
    max_amount: int
    expiry: int
    nonce: int
    v: int
    r: bytes
    s: bytes
    amount: int
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

    def request(self) -> ClaimRequest:
        auth = JobAuthorization(self.chain_job_id, self.client, self.node, self.max_amount, self.expiry, self.nonce)
        return ClaimRequest(SignedAuthorization(auth, self.v, self.r, self.s), self.amount, self.result_cid,
                            self.receipt_hash)  # fmt: skip

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["state"] = self.state.value
        for key in ("max_amount", "amount"):  # wei can exceed DAG-CBOR's 64-bit integers
            record[key] = str(record[key])
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Claim:
        return cls(**{**record, "state": ClaimState(record["state"]), "max_amount": int(record["max_amount"]),
                      "amount": int(record["amount"])})  # fmt: skip

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


class ClaimStore:
    def __init__(self, path: Path) -> None:
        self._tables = RecordTables(path, _TABLES)

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
        return counts

    def close(self) -> None:
        self._tables.close()
