"""EIP-712 JobAuthorization: what a client signs (locally) so a node can claim payment.

The domain binds a signature to one chain and one ledger contract; the message binds it
to one job, one node, a maximum amount, an expiry and a nonce (each nonce pays once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

DOMAIN_NAME, DOMAIN_VERSION = "mycelnet", "1"
TYPES = {
    "JobAuthorization": [
        {"name": "jobId", "type": "bytes32"},
        {"name": "client", "type": "address"},
        {"name": "node", "type": "address"},
        {"name": "maxAmount", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
    ]
}


@dataclass(frozen=True)
class JobAuthorization:
    job_id: bytes  # 32 bytes
    client: str
    node: str
    max_amount: int
    expiry: int
    nonce: int

    def message(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "client": self.client,
            "node": self.node,
            "maxAmount": self.max_amount,
            "expiry": self.expiry,
            "nonce": self.nonce,
        }


@dataclass(frozen=True)
class SignedAuthorization:
    authorization: JobAuthorization
    v: int
    r: bytes
    s: bytes


def domain(chain_id: int, contract: str) -> dict[str, Any]:
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": contract}


def digest(auth: JobAuthorization, chain_id: int, contract: str) -> bytes:
    """keccak256(0x1901 || domainSeparator || hashStruct(message)): what the contract recovers from."""
    signable = encode_typed_data(domain(chain_id, contract), TYPES, auth.message())
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def sign(auth: JobAuthorization, private_key: bytes, chain_id: int, contract: str) -> SignedAuthorization:
    """Sign with the client's key, on the client's machine (keys never travel to a node)."""
    signed = Account.sign_typed_data(private_key, domain(chain_id, contract), TYPES, auth.message())
    return SignedAuthorization(auth, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def recover(signed: SignedAuthorization, chain_id: int, contract: str) -> str:
    signable = encode_typed_data(domain(chain_id, contract), TYPES, signed.authorization.message())
    return str(Account.recover_message(signable, vrs=(signed.v, signed.r, signed.s)))
