"""The client's side of payment: its key, its escrow, and the records it signs locally.

The key is a hex file (0600) on the client's machine. It signs a job's commitment (terms a
node can rely on, never claim) when the job is submitted, and a claimable payment per
executor only after the result and receipts have been verified (``sdk.client.Job.pay``).
Signed payments are kept beside the key, one file per job, and a retry resends the same ones,
so a (job, node) is never signed for twice.

The chain stack (web3, eth-account) is imported on use, not with this module: a client that
never pays imports ``sdk`` without it, and :meth:`Wallet.open` says which extra to install.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sdk.extras import require_pay
from storage import dagcbor

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from contracts.ledger import Ledger
    from contracts.payment import Envelope

DEFAULT_KEY_FILE = Path("~/.mycelnet/client.key")


@dataclass
class Wallet:
    """A client account on one ledger: deposits, withdrawals, and job payments."""

    account: LocalAccount
    rpc_url: str
    contract: str
    key_file: Path

    @classmethod
    def open(cls, rpc_url: str, contract: str, key_file: str | os.PathLike[str] = DEFAULT_KEY_FILE) -> Wallet:
        require_pay("a wallet (paid jobs, deposits, settlement checks)")
        from contracts.keys import load_or_create_key

        path = Path(os.path.expanduser(os.fspath(key_file)))
        return cls(load_or_create_key(path), rpc_url, contract, path)

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def ledger(self) -> Ledger:
        from web3 import Web3

        from contracts.ledger import Ledger

        return Ledger(Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10})), self.contract)

    def chain_id(self) -> int:
        from contracts.errors import ChainError

        try:
            return int(self.ledger.w3.eth.chain_id)
        except Exception as exc:
            raise ChainError(f"the chain at {self.rpc_url} does not answer: {exc}") from None

    def deposit(self, wei: int) -> str:
        receipt = self.ledger.deposit(self.account, wei)
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def request_withdrawal(self, wei: int) -> int:
        """Announce a withdrawal; returns the unix time it unlocks (see the contract's rule)."""
        ledger = self.ledger
        ledger.request_withdrawal(self.account, wei)
        return ledger.pending_withdrawal(self.address)[1]

    def withdraw(self) -> str:
        receipt = self.ledger.withdraw(self.account)
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def balance(self) -> int:
        return self.ledger.balance(self.address)

    def commit(
        self, job_id: str, max_amount: int, max_price: int, expiry: int | None = None, min_stake: int = 0
    ) -> Envelope:
        """The job's terms: at most ``max_amount`` wei per node paid, ``max_price`` per CPU-second,
        executors staking at least ``min_stake`` wei on the ledger."""
        from contracts.payment import commit

        return commit(job_id, self.account.key, max_amount, max_price, self.chain_id(), self.contract, expiry,
                      min_stake)  # fmt: skip

    def pay_delivered(self, job_id: str, commitment: Envelope, deliveries: list[Delivered]) -> dict[str, Envelope]:
        """One signed payment per delivered receipt (node address -> payment), signed once:
        payments already signed for this job are returned as they were."""
        from contracts.authorization import JobPayment
        from contracts.payment import Envelope, NonceCounter, pay

        path = self.key_file.with_name(self.key_file.name + ".paid") / f"{job_id}.cbor"
        signed: dict[str, bytes] = dagcbor.decode(path.read_bytes()) if path.exists() else {}
        todo = [d for d in deliveries if d.address not in signed]
        nonces = NonceCounter(self.key_file.with_name(self.key_file.name + ".nonce")).take(len(todo)) if todo else []
        for delivery, nonce in zip(todo, nonces, strict=True):
            payment = pay(commitment, self.account.key, delivery.address, delivery.amount, delivery.receipt_hash,
                          delivery.result_digest, nonce)  # fmt: skip
            signed[delivery.address] = payment.encode()
        if todo:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(dagcbor.encode(signed))
            os.replace(tmp, path)  # written before anything is posted: a crash cannot sign twice
        return {address: Envelope.decode(signed[address], JobPayment)
                for address in sorted({d.address for d in deliveries})}  # fmt: skip

    def is_bound(self, address: str, peer_id: str) -> bool:
        """Whether the ledger binds ``address`` to ``peer_id`` (the node's Ed25519 signature)."""
        from contracts.binding import binding_is_valid

        ledger = self.ledger
        if ledger.peer_id_of(address) != peer_id.encode():
            return False
        registration = ledger.registration(address)
        return registration is not None and binding_is_valid(address, peer_id, ledger.address, registration[1])


@dataclass(frozen=True)
class Delivered:
    """A verified receipt and what it earns: the input of one payment."""

    address: str
    amount: int
    receipt_hash: bytes
    result_digest: bytes
