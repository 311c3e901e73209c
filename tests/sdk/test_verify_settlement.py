"""verify_settlement on a redundant job: each node's Settled event checked against its own receipt.

The chain is replaced by a ledger that returns fixed events, so the checks themselves (receipt
hashes, results, Ed25519 bindings) are exercised exactly, with no chain to start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import nacl.signing
import pytest
from web3 import Web3

from agents import receipt as receipts
from contracts.binding import binding_message
from contracts.ledger import Settlement
from contracts.payment import chain_job_id
from sdk import VerificationError, verify_settlement
from storage.cid import CID
from storage.peerid import peer_id_for

JOB = "c" * 32
CONTRACT = Web3.to_checksum_address("0x" + "11" * 20)
RESULT = CID.for_block(b"the result")


@dataclass
class Runner:
    """One node that ran the job: its keys, its receipt, its Settled event."""

    seed: int
    key: nacl.signing.SigningKey = field(init=False)
    peer_id: str = field(init=False)
    address: str = field(init=False)
    receipt: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.key = nacl.signing.SigningKey(bytes([self.seed]) * 32)
        self.peer_id = peer_id_for(bytes(self.key.verify_key))
        self.address = Web3.to_checksum_address("0x" + f"{self.seed:02x}" * 20)
        record = receipts.Receipt(JOB, CID.for_block(b"agent"), {}, RESULT, "ok", "wasm", "1",
                                  receipts.Usage(0.1, 1, 0.2, 3, 4), 1.0, 2.0 + self.seed, self.peer_id)  # fmt: skip
        self.receipt = receipts.sign(record, self.key)

    def settlement(self, receipt: bytes | None = None) -> Settlement:
        digest = CID.for_block(receipt or self.receipt, 0x71).digest
        return Settlement(chain_job_id(JOB), "0xclient", self.address, 1000 + self.seed, bytes(RESULT), digest,
                          f"0xtx{self.seed}", self.seed)  # fmt: skip


class FakeLedger:
    settlements_for: ClassVar[list[Settlement]] = []
    registered: ClassVar[dict[str, tuple[bytes, bytes]]] = {}

    def __init__(self, w3: Any, contract: str) -> None:
        self.address = contract

    def settlements(self, job_id: bytes) -> list[Settlement]:
        assert job_id == chain_job_id(JOB)
        return self.settlements_for

    def registration(self, node: str) -> tuple[bytes, bytes] | None:
        return self.registered.get(node)


@pytest.fixture
def runners(monkeypatch: pytest.MonkeyPatch) -> tuple[Runner, Runner]:
    first, second = Runner(1), Runner(2)
    monkeypatch.setattr("contracts.ledger.Ledger", FakeLedger)  # sdk.verify imports it on use
    FakeLedger.settlements_for = [first.settlement(), second.settlement()]
    FakeLedger.registered = {
        r.address: (r.peer_id.encode(), r.key.sign(binding_message(r.address, r.peer_id, CONTRACT)).signature)
        for r in (first, second)
    }
    return first, second


def test_a_valid_redundant_job_verifies_against_every_receipt(runners: tuple[Runner, Runner]) -> None:
    first, second = runners
    checks = verify_settlement(JOB, "http://127.0.0.1:1", CONTRACT, receipts=[first.receipt, second.receipt])
    assert [(c.node_peer_id, c.receipt_checked) for c in checks] == [(first.peer_id, True), (second.peer_id, True)]
    assert all(c.result == str(RESULT) for c in checks)


def test_one_receipt_of_a_redundant_job_is_not_called_tampering(runners: tuple[Runner, Runner]) -> None:
    """The README's call (receipt=...) on a valid 2-node job: the other node's settlement is not
    checked against a receipt it never signed."""
    first, second = runners
    checks = verify_settlement(JOB, "http://127.0.0.1:1", CONTRACT, receipt=first.receipt)
    assert [(c.node_peer_id, c.receipt_checked) for c in checks] == [(first.peer_id, True), (second.peer_id, False)]


def test_a_settlement_with_another_nodes_receipt_is_refused(runners: tuple[Runner, Runner]) -> None:
    first, second = runners
    FakeLedger.settlements_for = [first.settlement(), second.settlement(receipt=first.receipt)]
    with pytest.raises(VerificationError, match=f"different receipt .* from {second.peer_id}"):
        verify_settlement(JOB, "http://127.0.0.1:1", CONTRACT, receipts=[first.receipt, second.receipt])


def test_a_forged_binding_is_refused(runners: tuple[Runner, Runner]) -> None:
    first, second = runners
    FakeLedger.registered[second.address] = (first.peer_id.encode(), FakeLedger.registered[second.address][1])
    with pytest.raises(VerificationError, match="bad Ed25519 signature"):
        verify_settlement(JOB, "http://127.0.0.1:1", CONTRACT, receipts=[first.receipt, second.receipt])
