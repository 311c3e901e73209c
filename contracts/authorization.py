"""The client's two EIP-712 records, and the one signed envelope both travel in.

``JobCommitment`` goes with the job before any work: job id, client, the most it will pay,
the most it pays per CPU-second, the least stake an executor must hold, expiry. It is
evidence for a node (this client offered these terms), never money: the ledger knows no
claim of it, and its distinct primary type gives it a digest no ``JobPayment`` can have.

``JobPayment`` is the only claimable record. The client signs it after it holds a node's
verified result and receipt, for exactly the amount that receipt's CPU-seconds and the
node's price give, bound to the receipt's hash and the result's CID, so the ledger pays
that node that amount for that delivered work and nothing else.

The domain binds both to one chain and one ledger contract (EIP-712 ``EIP712Domain`` with
name, version, chainId, verifyingContract).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# eth_account is imported where it is used: it costs a node ~1 s of start-up (its key-file
# module pulls in a BLS pairing library), and a node without a ledger never signs or recovers.

DOMAIN_NAME, DOMAIN_VERSION = "mycelnet", "1"
COMMITMENT_TYPES = {
    "JobCommitment": [
        {"name": "jobId", "type": "bytes32"},
        {"name": "client", "type": "address"},
        {"name": "maxAmount", "type": "uint256"},
        {"name": "maxPrice", "type": "uint256"},
        {"name": "minStake", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ]
}
PAYMENT_TYPES = {
    "JobPayment": [
        {"name": "jobId", "type": "bytes32"},
        {"name": "client", "type": "address"},
        {"name": "node", "type": "address"},
        {"name": "amount", "type": "uint256"},
        {"name": "receiptHash", "type": "bytes32"},
        {"name": "resultCid", "type": "bytes32"},
        {"name": "expiry", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
    ]
}


@dataclass(frozen=True)
class JobCommitment:
    """What a paid job carries to its nodes: the client's terms, not claimable."""

    job_id: bytes  # 32 bytes: contracts.payment.chain_job_id
    client: str
    max_amount: int  # wei, at most, per node paid
    max_price: int  # wei per CPU-second, at most
    min_stake: int  # wei an executor must have staked on the ledger (0: any)
    expiry: int

    types = COMMITMENT_TYPES

    def message(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "client": self.client, "maxAmount": self.max_amount,
                "maxPrice": self.max_price, "minStake": self.min_stake, "expiry": self.expiry}  # fmt: skip


@dataclass(frozen=True)
class JobPayment:
    """What the ledger pays: one node, one receipt, one result, one exact amount."""

    job_id: bytes  # 32 bytes
    client: str
    node: str
    amount: int
    receipt_hash: bytes  # sha2-256 of the signed receipt block (node.settlement.service.receipt_hash)
    result_digest: bytes  # sha2-256 digest inside the result's CIDv1 dag-pb
    expiry: int
    nonce: int

    types = PAYMENT_TYPES

    def message(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "client": self.client, "node": self.node, "amount": self.amount,
                "receiptHash": self.receipt_hash, "resultCid": self.result_digest, "expiry": self.expiry,
                "nonce": self.nonce}  # fmt: skip


Record = JobCommitment | JobPayment


@dataclass(frozen=True)
class Signed:
    """A record with the client's secp256k1 signature over its EIP-712 digest."""

    record: Record
    v: int
    r: bytes
    s: bytes


def domain(chain_id: int, contract: str) -> dict[str, Any]:
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": contract}


def digest(record: Record, chain_id: int, contract: str) -> bytes:
    """keccak256(0x1901 || domainSeparator || hashStruct(message)): what the contract recovers from."""
    from eth_account.messages import encode_typed_data
    from eth_utils.crypto import keccak

    signable = encode_typed_data(domain(chain_id, contract), record.types, record.message())
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def sign(record: Record, private_key: bytes, chain_id: int, contract: str) -> Signed:
    """Sign with the client's key, on the client's machine (keys never travel to a node)."""
    from eth_account import Account

    signed = Account.sign_typed_data(private_key, domain(chain_id, contract), record.types, record.message())
    return Signed(record, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def recover(signed: Signed, chain_id: int, contract: str) -> str:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    signable = encode_typed_data(domain(chain_id, contract), signed.record.types, signed.record.message())
    return str(Account.recover_message(signable, vrs=(signed.v, signed.r, signed.s)))
