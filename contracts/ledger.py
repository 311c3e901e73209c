"""A small web3 client for the MycelLedger contract (any EVM JSON-RPC, or the in-process tester)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from contracts.authorization import SignedAuthorization
from contracts.build import load_artifact


@dataclass(frozen=True)
class ClaimRequest:
    signed: SignedAuthorization
    amount: int
    result_cid: bytes
    receipt_hash: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        auth = self.signed.authorization
        return (
            auth.job_id, auth.client, auth.max_amount, auth.expiry, auth.nonce, self.amount,
            self.signed.v, self.signed.r, self.signed.s, self.result_cid, self.receipt_hash,
        )  # fmt: skip


class Ledger:
    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact()["abi"])

    @classmethod
    def deploy(cls, w3: Web3, deployer: str) -> Ledger:
        artifact = load_artifact()
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = w3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": deployer}))
        return cls(w3, str(receipt["contractAddress"]))

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def _send(self, call: Any, sender: str, value: int = 0) -> Any:
        tx = call.transact({"from": sender, "value": value})
        return self.w3.eth.wait_for_transaction_receipt(tx)

    def deposit(self, client: str, amount: int) -> Any:
        return self._send(self.contract.functions.deposit(), client, amount)

    def balance(self, account: str) -> int:
        return int(self.contract.functions.balanceOf(account).call())

    def earnings(self, node: str) -> int:
        return int(self.contract.functions.earnings(node).call())

    def claim(self, node: str, request: ClaimRequest) -> Any:
        return self._send(self.contract.functions.claim(request.as_tuple()), node)

    def claim_batch(self, node: str, requests: list[ClaimRequest]) -> Any:
        return self._send(self.contract.functions.claim_batch([r.as_tuple() for r in requests]), node)

    def register(self, node: str, peer_id: bytes, binding_signature: bytes) -> Any:
        return self._send(self.contract.functions.register(peer_id, binding_signature), node)
