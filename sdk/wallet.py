"""The client's side of payment: its key, its escrow, and authorisations signed locally.

The key is a hex file (0600) on the client's machine. Authorisations are signed here and
only signatures go to the network, so no node ever holds the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts.errors import ChainError
from contracts.keys import load_or_create_key
from contracts.ledger import Ledger
from contracts.payment import NonceCounter, Payment, authorize
from sdk.errors import SdkError

DEFAULT_KEY_FILE = Path("~/.mycelnet/client.key")


def settling_nodes(node: dict[str, Any], peers: list[dict[str, Any]]) -> list[str]:
    """The chain addresses a payment should cover: the node asked (``GET /v1/node``) and every
    live peer it knows (``GET /v1/peers``) that settles on a chain."""
    addresses = {p["chain_address"] for p in peers if p.get("alive") and p.get("chain_address")}
    own = (node.get("chain") or {}).get("address")
    if own:
        addresses.add(own)
    return sorted(addresses)


@dataclass
class Wallet:
    """A client account on one ledger: deposits, withdrawals, and job payments."""

    account: LocalAccount
    rpc_url: str
    contract: str
    key_file: Path

    @classmethod
    def open(cls, rpc_url: str, contract: str, key_file: str | os.PathLike[str] = DEFAULT_KEY_FILE) -> Wallet:
        path = Path(os.path.expanduser(os.fspath(key_file)))
        return cls(load_or_create_key(path), rpc_url, contract, path)

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def ledger(self) -> Ledger:
        return Ledger(Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10})), self.contract)

    def chain_id(self) -> int:
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

    def pay_for(self, job_id: str, nodes: list[str], max_amount: int, expiry: int | None = None) -> Payment:
        """Authorisations for ``job_id``: one per node address, each with its own nonce."""
        if not nodes:
            raise SdkError("no node on the network settles on this ledger: nothing to authorise")
        nonces = NonceCounter(self.key_file.with_name(self.key_file.name + ".nonce")).take(len(nodes))
        return authorize(job_id, self.account.key, nodes, max_amount, self.chain_id(), self.contract, nonces, expiry)
