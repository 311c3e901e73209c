"""A small web3 client for the MycelLedger contract (any EVM JSON-RPC, or the in-process tester).

A sender is either an address the endpoint holds unlocked (anvil's dev accounts, the
tester's) or a local account: then the transaction is signed here and only the signed
bytes travel, so a key never leaves the machine that owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception

from contracts.build import load_artifact
from contracts.claim import RESULT_CID_PREFIX as RESULT_CID_PREFIX
from contracts.claim import ClaimRequest as ClaimRequest
from contracts.errors import ChainError

Sender = str | LocalAccount


@dataclass(frozen=True)
class Settlement:
    """One settlement log: what the chain says was paid for a job."""

    job_id: bytes
    client: str
    node: str
    amount: int
    result_cid: bytes
    receipt_hash: bytes
    tx_hash: str
    block: int


# The ledger logs each settlement packed (see the header of MycelLedger.vy): the job id as the only
# topic; data node (20 bytes) | client (20) | amount (16) | 8 zero bytes | result digest (32) | receipt hash (32).


class Ledger:
    def __init__(self, w3: Web3, address: str, abi: Any = None) -> None:
        """``abi``: another build's (a benchmark comparing contract versions); the committed one by default."""
        self.w3 = w3
        self.contract = w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=abi if abi is not None else load_artifact()["abi"]
        )

    @classmethod
    def deploy(cls, w3: Web3, deployer: Sender, artifact: dict[str, Any] | None = None) -> Ledger:
        artifact = artifact or load_artifact()
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = _transact(w3, factory.constructor(), deployer, 0)
        return cls(w3, str(receipt["contractAddress"]), artifact["abi"])

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def _send(self, call: Any, sender: Sender, value: int = 0) -> Any:
        return _transact(self.w3, call, sender, value)

    # -- clients -------------------------------------------------------------------------
    def deposit(self, client: Sender, amount: int) -> Any:
        return self._send(self.contract.functions.deposit(), client, amount)

    def request_withdrawal(self, client: Sender, amount: int) -> Any:
        return self._send(self.contract.functions.request_withdrawal(amount), client)

    def withdraw(self, client: Sender) -> Any:
        return self._send(self.contract.functions.withdraw(), client)

    def balance(self, account: str) -> int:
        return int(self.contract.functions.balanceOf(Web3.to_checksum_address(account)).call())

    def pending_withdrawal(self, account: str) -> tuple[int, int]:
        """(amount, unix time it unlocks); (0, 0) when none was requested."""
        address = Web3.to_checksum_address(account)
        return (
            int(self.contract.functions.pendingWithdrawal(address).call()),
            int(self.contract.functions.withdrawalUnlocksAt(address).call()),
        )

    # -- nodes ---------------------------------------------------------------------------
    def earnings(self, node: str) -> int:
        return int(self.contract.functions.earnings(Web3.to_checksum_address(node)).call())

    def withdraw_earnings(self, node: Sender) -> Any:
        return self._send(self.contract.functions.withdraw_earnings(), node)

    def claim(self, node: Sender, request: ClaimRequest) -> Any:
        return self._send(self.contract.functions.claim(request.as_tuple()), node)

    def claim_batch(self, node: Sender, requests: list[ClaimRequest]) -> Any:
        return self._send(self.contract.functions.claim_batch([r.as_tuple() for r in requests]), node)

    def check_claim(self, node: str, request: ClaimRequest) -> str | None:
        """Why the contract would refuse this claim from ``node`` now (None: it would pay)."""
        try:
            self.contract.functions.claim(request.as_tuple()).call({"from": Web3.to_checksum_address(node)})
        except ContractLogicError as exc:
            return str(exc.message or exc).removeprefix("execution reverted: ")
        except Exception as exc:  # the in-process tester raises its own TransactionFailed
            if type(exc).__name__ == "TransactionFailed":
                return str(exc)
            raise
        return None

    def nonce_used(self, client: str, nonce: int) -> bool:
        return bool(self.contract.functions.nonce_used(Web3.to_checksum_address(client), nonce).call())

    def stake(self, node: Sender, amount: int) -> Any:
        return self._send(self.contract.functions.stake(), node, amount)

    def request_unstake(self, node: Sender, amount: int) -> Any:
        return self._send(self.contract.functions.request_unstake(amount), node)

    def unstake(self, node: Sender) -> Any:
        return self._send(self.contract.functions.unstake(), node)

    def stake_of(self, node: str) -> int:
        """The node's locked stake (what it asked to unstake no longer counts)."""
        return int(self.contract.functions.stakeOf(Web3.to_checksum_address(node)).call())

    def register(self, node: Sender, peer_id: bytes, binding_signature: bytes) -> Any:
        return self._send(self.contract.functions.register(peer_id, binding_signature), node)

    def peer_id_of(self, node: str) -> bytes:
        return bytes(self.contract.functions.peerIdOf(Web3.to_checksum_address(node)).call())

    def registration(self, node: str) -> tuple[bytes, bytes] | None:
        """The latest (peer ID, Ed25519 binding signature) the node registered, from its event."""
        topic = self.contract.events.NodeRegistered().topic
        logs = self.w3.eth.get_logs(
            {"address": self.contract.address, "fromBlock": 0, "topics": [topic, _address_topic(node)]}
        )
        if not logs:
            return None
        event = self.contract.events.NodeRegistered().process_log(logs[-1])
        return bytes(event["args"]["peerId"]), bytes(event["args"]["binding"])

    # -- verifiers -----------------------------------------------------------------------
    def settlements(self, job_id: bytes) -> list[Settlement]:
        """Every Settled event for an on-chain job id (a redundant job pays several nodes)."""
        topic = self.contract.events.Settled().topic
        logs = self.w3.eth.get_logs(
            {"address": self.contract.address, "fromBlock": 0, "topics": [topic, "0x" + job_id.hex()]}
        )
        return [self._settlement(entry) for entry in logs]

    def settlements_in(self, receipt: Any) -> list[Settlement]:
        """The settlements one transaction logged, in claim order."""
        topic = bytes.fromhex(self.contract.events.Settled().topic.removeprefix("0x"))
        return [
            self._settlement(entry)
            for entry in receipt["logs"]
            if Web3.to_checksum_address(entry["address"]) == self.contract.address
            and entry["topics"]
            and bytes(entry["topics"][0]) == topic
        ]

    def _settlement(self, entry: Any) -> Settlement:
        args = self.contract.events.Settled().process_log(entry)["args"]
        return Settlement(
            bytes(args["jobId"]),
            str(args["client"]),
            str(args["node"]),
            int(args["amount"]),
            RESULT_CID_PREFIX + bytes(args["resultCid"]),
            bytes(args["receiptHash"]),
            "0x" + bytes(entry["transactionHash"]).hex(),
            int(entry["blockNumber"]),
        )


def _address_topic(address: str) -> str:
    return "0x" + bytes(12).hex() + Web3.to_checksum_address(address)[2:].lower()


def _transact(w3: Web3, call: Any, sender: Sender, value: int) -> Any:
    """Send and wait for the receipt; a revert or an RPC failure becomes a ChainError."""
    try:
        if isinstance(sender, str):
            tx_hash = call.transact({"from": sender, "value": value})
        else:
            tx = call.build_transaction(
                {"from": sender.address, "value": value, "nonce": w3.eth.get_transaction_count(sender.address)}
            )
            tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    except ContractLogicError as exc:
        reason = str(exc.message or exc).removeprefix("execution reverted: ")
        raise ChainError(f"the ledger refused it: {reason}") from None
    except (Web3Exception, OSError) as exc:
        raise ChainError(f"chain request failed: {exc}") from None
    if receipt["status"] != 1:
        raise ChainError(f"transaction {receipt['transactionHash'].hex()} reverted")
    return receipt
