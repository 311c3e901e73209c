"""How the client's signed records travel, and the rules both sides apply to them.

Money moves only for delivered, verified work (see the README's settlement section):

1. A paid job carries the client's :class:`~contracts.authorization.JobCommitment` (its
   terms). A node decides from it whether to work; nothing in it can be claimed.
2. After the requester holds the result and every receipt (redundant results agreeing), the
   client's SDK signs one :class:`~contracts.authorization.JobPayment` per executor, for
   :func:`amount_for` its receipt, bound to that receipt's hash and the result.
3. The requesting node forwards each executor its own payment; the executor checks it against
   the receipt it stored and claims it.

Both records travel in one envelope, dag-cbor ``{"type", "chain_id", "contract", "message",
"sig"}``: ``type`` is the EIP-712 primary type, ``message`` its fields (wei amounts as
decimal strings, since they can exceed DAG-CBOR's 64-bit integers), ``sig`` the 65-byte
``r || s || v``. Decoding checks the signature against the client the message names.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.accounting import amount_for as amount_for
from contracts.accounting import chain_job_id as chain_job_id
from contracts.accounting import receipt_hash as receipt_hash
from contracts.authorization import JobCommitment, JobPayment, Record, Signed, recover, sign
from contracts.checksum import to_checksum_address
from contracts.errors import AuthorizationError
from storage import dagcbor
from storage.errors import CodecError

MAX_AUTH_WINDOW = 7 * 86400  # the contract refuses payments expiring further ahead
_BIG = ("maxAmount", "maxPrice", "minStake", "amount")


@dataclass(frozen=True)
class Envelope:
    signed: Signed
    chain_id: int
    contract: str

    @property
    def client(self) -> str:
        return self.signed.record.client

    def encode(self) -> bytes:
        record = self.signed.record
        message = {k: ("0x" + v.hex() if isinstance(v, bytes) else str(v) if k in _BIG else v)
                   for k, v in record.message().items()}  # fmt: skip
        return dagcbor.encode(
            {
                "type": type(record).__name__,
                "chain_id": self.chain_id,
                "contract": self.contract,
                "message": message,
                "sig": self.signed.r + self.signed.s + bytes([self.signed.v]),
            }
        )

    @classmethod
    def decode(cls, data: bytes, expect: type[Record]) -> Envelope:
        """Parse, and check the signature is the named client's (AuthorizationError if not)."""
        try:
            envelope = dagcbor.decode(data)
        except CodecError as exc:
            raise AuthorizationError(f"signed record is not valid DAG-CBOR: {exc}") from None
        try:
            if envelope["type"] != expect.__name__:
                raise AuthorizationError(f"expected a {expect.__name__}, got a {envelope['type']}")
            message, sig = envelope["message"], bytes(envelope["sig"])
            if len(sig) != 65:
                raise ValueError("the signature is not 65 bytes")
            chain_id, contract = int(envelope["chain_id"]), to_checksum_address(envelope["contract"])
            record: Record
            if expect is JobCommitment:
                record = JobCommitment(_b32(message["jobId"]), to_checksum_address(message["client"]),
                                       int(message["maxAmount"]), int(message["maxPrice"]),
                                       int(message["minStake"]), int(message["expiry"]))  # fmt: skip
            else:
                record = JobPayment(_b32(message["jobId"]), to_checksum_address(message["client"]),
                                    to_checksum_address(message["node"]), int(message["amount"]),
                                    _b32(message["receiptHash"]), _b32(message["resultCid"]),
                                    int(message["expiry"]), int(message["nonce"]))  # fmt: skip
            signed = Signed(record, sig[64], sig[:32], sig[32:64])
            if recover(signed, chain_id, contract) != record.client:
                raise AuthorizationError(f"the {expect.__name__} is not signed by {record.client}")
        except AuthorizationError:
            raise
        except Exception as exc:  # KeyError, TypeError, ValueError, and eth-account's own
            raise AuthorizationError(f"malformed {expect.__name__}: {exc}") from None
        return cls(signed, chain_id, contract)

    def check_ledger(self, chain_id: int, contract: str) -> None:
        if chain_id != self.chain_id or to_checksum_address(contract) != self.contract:
            raise AuthorizationError(
                f"signed for ledger {self.contract} on chain {self.chain_id}, this node settles on "
                f"{contract} on chain {chain_id}"
            )


def _b32(value: Any) -> bytes:
    raw = bytes.fromhex(str(value).removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError("a bytes32 field is not 32 bytes")
    return raw


def commitment_of(data: bytes, job_id: str) -> Envelope:
    """The job's commitment, checked: signed by its client, for this job."""
    envelope = Envelope.decode(data, JobCommitment)
    if envelope.signed.record.job_id != chain_job_id(job_id):
        raise AuthorizationError(f"the commitment is signed for another job, not {job_id}")
    return envelope


def check_commitment_usable(envelope: Envelope, chain_id: int, contract: str, price: int, now: float | None = None,
                            margin: int = 60) -> None:  # fmt: skip
    """Refuse terms this node would not work for: another ledger, expired, too far ahead, or a
    price ceiling below this node's price."""
    now = time.time() if now is None else now
    envelope.check_ledger(chain_id, contract)
    record = envelope.signed.record
    assert isinstance(record, JobCommitment)
    if record.expiry < now + margin:
        raise AuthorizationError("the commitment expires before the job could be paid")
    if record.expiry > now + MAX_AUTH_WINDOW:
        raise AuthorizationError("the commitment expires more than 7 days ahead (the ledger refuses such payments)")
    if price > record.max_price:
        raise AuthorizationError(f"the client pays at most {record.max_price} wei per CPU-second, this node "
                                 f"charges {price}")  # fmt: skip


def commit(job_id: str, client_key: bytes, max_amount: int, max_price: int, chain_id: int, contract: str,
           expiry: int | None = None, min_stake: int = 0) -> Envelope:  # fmt: skip
    """The client's terms for a paid job (locally signed)."""
    from eth_account import Account  # here, not at import: it costs a node ~1 s of start-up

    client = Account.from_key(client_key).address
    expiry = expiry if expiry is not None else int(time.time()) + 86400
    contract = to_checksum_address(contract)
    record = JobCommitment(chain_job_id(job_id), client, max_amount, max_price, min_stake, expiry)
    return Envelope(sign(record, client_key, chain_id, contract), chain_id, contract)


def pay(commitment: Envelope, client_key: bytes, node: str, amount: int, receipt_hash: bytes, result_digest: bytes,
        nonce: int) -> Envelope:  # fmt: skip
    """The claimable payment for one node's delivered receipt, under the job's commitment."""
    terms = commitment.signed.record
    assert isinstance(terms, JobCommitment)
    if amount > terms.max_amount:
        raise AuthorizationError(f"{amount} wei is above the job's committed maximum {terms.max_amount}")
    record = JobPayment(terms.job_id, terms.client, to_checksum_address(node), amount, receipt_hash,
                        result_digest, terms.expiry, nonce)  # fmt: skip
    return Envelope(sign(record, client_key, commitment.chain_id, commitment.contract), commitment.chain_id,
                    commitment.contract)  # fmt: skip


class NonceCounter:
    """Per-client nonces from a locked counter file beside the key.

    Consecutive nonces share the contract's nonce pages (64 per page, the newest kept in the
    client's own state word), which keeps claims cheap; after a lost file the counter restarts
    from the clock (2^20 per second), above anything handed out before.
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


def describe(envelope: Envelope) -> dict[str, Any]:
    record = envelope.signed.record
    return {"type": type(record).__name__, **{k: ("0x" + v.hex() if isinstance(v, bytes) else v)
                                              for k, v in record.message().items()}}  # fmt: skip
