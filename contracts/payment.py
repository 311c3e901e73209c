"""What a client attaches to a job so the node that runs it can be paid.

The client signs one EIP-712 JobAuthorization per node it is willing to pay (on its own
machine: the key never travels), all for the same on-chain job id, which is derived from
the job id so anyone can link a job to its settlement. The requester forwards each node
only that node's authorisation, so a node that merely saw an offer holds nothing to claim.

Encoded as dag-cbor inside the job spec's ``payment`` field.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from contracts.authorization import JobAuthorization, SignedAuthorization, recover, sign
from contracts.errors import AuthorizationError
from storage import dagcbor
from storage.errors import CodecError

MAX_AUTH_WINDOW = 7 * 86400  # the contract refuses authorisations expiring further ahead


def chain_job_id(job_id: str) -> bytes:
    """The bytes32 a job is settled under on chain."""
    return hashlib.sha256(b"mycel-job:" + job_id.encode()).digest()


@dataclass(frozen=True)
class Payment:
    client: str
    max_amount: int
    expiry: int
    chain_id: int
    contract: str
    authorizations: dict[str, SignedAuthorization]  # node address (checksummed) -> its authorisation

    def for_node(self, address: str) -> Payment | None:
        """The payment as one node may see it: its own authorisation only."""
        signed = self.authorizations.get(Web3.to_checksum_address(address))
        return None if signed is None else replace(self, authorizations={signed.authorization.node: signed})

    def encode(self) -> bytes:
        return dagcbor.encode(
            {
                "client": self.client,
                "max_amount": str(self.max_amount),  # wei can exceed DAG-CBOR's 64-bit integers
                "expiry": self.expiry,
                "chain_id": self.chain_id,
                "contract": self.contract,
                "auths": [
                    {"node": node, "nonce": s.authorization.nonce, "v": s.v, "r": s.r, "s": s.s}
                    for node, s in sorted(self.authorizations.items())
                ],
            }
        )

    @classmethod
    def decode(cls, data: bytes, job_id: str) -> Payment:
        """Parse and check every signature against the client named (AuthorizationError if not)."""
        try:
            record = dagcbor.decode(data)
        except CodecError as exc:
            raise AuthorizationError(f"payment is not valid DAG-CBOR: {exc}") from None
        try:
            client = Web3.to_checksum_address(record["client"])
            contract = Web3.to_checksum_address(record["contract"])
            max_amount, expiry, chain_id = (int(record[k]) for k in ("max_amount", "expiry", "chain_id"))
            auths: dict[str, SignedAuthorization] = {}
            for item in record["auths"]:
                node = Web3.to_checksum_address(item["node"])
                auth = JobAuthorization(chain_job_id(job_id), client, node, max_amount, expiry, int(item["nonce"]))
                signed = SignedAuthorization(auth, int(item["v"]), bytes(item["r"]), bytes(item["s"]))
                if recover(signed, chain_id, contract) != client:
                    raise AuthorizationError(f"the authorisation for node {node} is not signed by {client}")
                auths[node] = signed
        except (KeyError, TypeError, ValueError) as exc:
            raise AuthorizationError(f"malformed payment: {exc}") from None
        return cls(client, max_amount, expiry, chain_id, contract, auths)

    def check_usable(self, chain_id: int, contract: str, now: float | None = None, margin: int = 60) -> None:
        """Refuse authorisations this node could not claim: wrong chain, expired, too far ahead."""
        now = time.time() if now is None else now
        if chain_id != self.chain_id or Web3.to_checksum_address(contract) != self.contract:
            raise AuthorizationError(
                f"the payment is for ledger {self.contract} on chain {self.chain_id}, this node settles on "
                f"{contract} on chain {chain_id}"
            )
        if self.expiry < now + margin:
            raise AuthorizationError("the payment authorisation expires before the job could be claimed")
        if self.expiry > now + MAX_AUTH_WINDOW:
            raise AuthorizationError("the payment authorisation expires more than 7 days ahead (the ledger refuses it)")


class NonceCounter:
    """Per-client nonces from a locked counter file beside the key.

    Consecutive nonces share the contract's bitmap slots (256 per slot), which keeps claims
    cheap; after a lost file the counter restarts from the clock (2^20 per second), above
    anything handed out before.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def take(self, count: int = 1) -> list[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            text = os.pread(fd, 64, 0).decode().strip()
            start = max(int(text) if text.isdigit() else 0, int(time.time()) << 20)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(start + count).encode(), 0)
        finally:
            os.close(fd)
        return list(range(start, start + count))


def authorize(
    job_id: str,
    client_key: bytes,
    nodes: list[str],
    max_amount: int,
    chain_id: int,
    contract: str,
    nonces: list[int],
    expiry: int | None = None,
) -> Payment:
    """Sign an authorisation for each node in ``nodes`` (locally)."""
    client = Account.from_key(client_key).address
    expiry = expiry if expiry is not None else int(time.time()) + 86400
    contract = Web3.to_checksum_address(contract)
    auths: dict[str, SignedAuthorization] = {}
    for node, nonce in zip(sorted({Web3.to_checksum_address(n) for n in nodes}), nonces, strict=False):
        auth = JobAuthorization(chain_job_id(job_id), client, node, max_amount, expiry, nonce)
        auths[node] = sign(auth, client_key, chain_id, contract)
    return Payment(client, max_amount, expiry, chain_id, contract, auths)


def describe(payment: Payment) -> dict[str, Any]:
    return {"client": payment.client, "max_amount": payment.max_amount, "expiry": payment.expiry,
            "nodes": sorted(payment.authorizations)}  # fmt: skip
