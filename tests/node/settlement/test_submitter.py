"""The claim submitter against a real anvil: batches, refusals, RPC failures, crashes, restarts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts.devchain import DevChain, start_dev_chain
from contracts.errors import ChainError
from contracts.ledger import Ledger
from contracts.payment import commit, pay
from node.metrics import Metrics
from node.settlement.claims import Claim, ClaimState, ClaimStore
from node.settlement.submitter import ClaimSubmitter


@dataclass
class Setup:
    chain: DevChain
    ledger: Ledger
    node: LocalAccount
    client: LocalAccount
    path: Path
    nonce: int = 1

    def claim(self, job: str, amount: int = 1000, expiry: int | None = None) -> Claim:
        self.nonce += 1
        terms = commit(job, self.client.key, 10**6, 10**3, self.ledger.w3.eth.chain_id, self.ledger.address, expiry)
        payment = pay(terms, self.client.key, self.node.address, amount, os.urandom(32), os.urandom(32), self.nonce)
        return Claim.of(job, payment.signed)

    def submitter(self, ledger: Ledger | None = None, batch_size: int = 10) -> ClaimSubmitter:
        return ClaimSubmitter(ClaimStore(self.path / "claims"), ledger or self.ledger, self.node, Metrics(),
                              batch_size)  # fmt: skip


@pytest.fixture(scope="module")
def devchain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevChain]:
    chain = start_dev_chain(tmp_path_factory.mktemp("anvil"))
    yield chain
    chain.stop()


@pytest.fixture
def setup(devchain: DevChain, tmp_path: Path) -> Setup:
    node, client = Account.create(), Account.create()
    devchain.fund(node.address)
    devchain.fund(client.address)
    ledger = Ledger(devchain.web3(), devchain.contract)
    ledger.deposit(client, 10**9)
    return Setup(devchain, ledger, node, client, tmp_path)


def test_batch_settles_every_claim_in_one_transaction(setup: Setup) -> None:
    submitter = setup.submitter()
    claims = [setup.claim(f"job-{i}") for i in range(5)]
    for claim in claims:
        assert submitter.enqueue(claim)
    assert not submitter.enqueue(claims[0])  # a job is claimed once
    assert submitter.flush() == 5
    stored = submitter.store.all()
    assert {c.state for c in stored} == {ClaimState.SETTLED} and len({c.tx_hash for c in stored}) == 1
    assert setup.ledger.earnings(setup.node.address) == 5000
    assert submitter.metrics.value("claims_gas_total") > 0
    assert submitter.flush() == 0  # nothing left; nothing sent again
    assert setup.ledger.earnings(setup.node.address) == 5000


def test_a_refused_claim_fails_with_the_ledger_reason_and_the_rest_settle(setup: Setup) -> None:
    submitter = setup.submitter()
    good = setup.claim("good")
    too_much = setup.claim("too-much")
    too_much.amount = 1001  # more than the client signed for
    expired = setup.claim("expired", expiry=int(time.time()) - 10)
    for claim in (good, too_much, expired):
        submitter.enqueue(claim)
    assert submitter.flush() == 1
    states = {c.job_id: c for c in submitter.store.all()}
    assert states["good"].state is ClaimState.SETTLED
    assert states["too-much"].state is ClaimState.FAILED and "not signed by the client" in states["too-much"].error
    assert states["expired"].state is ClaimState.FAILED and "expired" in states["expired"].error
    assert submitter.metrics.value("claims_failed_total") == 2


def test_rpc_down_keeps_claims_pending_then_they_settle(setup: Setup) -> None:
    dead = Ledger(Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 1})), setup.ledger.address)
    submitter = setup.submitter(ledger=dead)
    submitter.enqueue(setup.claim("later"))
    with pytest.raises(ChainError):
        submitter.flush()
    assert submitter.store.get("later").state is ClaimState.PENDING  # type: ignore[union-attr]
    submitter.store.close()
    assert setup.submitter().flush() == 1  # a restarted node, the chain back
    assert setup.ledger.earnings(setup.node.address) == 1000


def test_crash_before_the_transaction_was_sent_resends_once(setup: Setup) -> None:
    submitter = setup.submitter()
    claim = setup.claim("crashed-before-send")
    submitter.enqueue(claim)
    claim.state, claim.tx_hash, claim.attempts = ClaimState.SUBMITTED, "0x" + "ab" * 32, 1  # hash stored, never sent
    submitter.store.save([claim])
    submitter.store.close()
    restarted = setup.submitter()
    assert restarted.flush() == 1
    assert setup.ledger.earnings(setup.node.address) == 1000
    assert restarted.store.get(claim.job_id).state is ClaimState.SETTLED  # type: ignore[union-attr]


def test_crash_after_the_transaction_landed_never_claims_again(setup: Setup) -> None:
    submitter = setup.submitter()
    claim = setup.claim("crashed-after-send")
    submitter.enqueue(claim)
    assert submitter.flush() == 1
    tx_hash = submitter.store.get(claim.job_id).tx_hash  # type: ignore[union-attr]
    landed = submitter.store.get(claim.job_id)
    assert landed is not None
    landed.state = ClaimState.SUBMITTED  # as if the node died before it read the receipt
    submitter.store.save([landed])
    submitter.store.close()
    restarted = setup.submitter()
    assert restarted.flush() == 1
    after = restarted.store.get(claim.job_id)
    assert after is not None and after.state is ClaimState.SETTLED and after.tx_hash == tx_hash
    assert setup.ledger.earnings(setup.node.address) == 1000  # paid once


def test_lost_state_cannot_make_the_ledger_pay_twice(setup: Setup) -> None:
    claim = setup.claim("replayed")
    first = setup.submitter()
    first.enqueue(claim)
    assert first.flush() == 1
    first.store.close()
    (setup.path / "claims" / "data.mdb").unlink()  # the node lost its claim database
    again = setup.submitter()
    assert again.enqueue(claim)  # it looks new to the node
    assert again.flush() == 0
    failed = again.store.get(claim.job_id)
    assert failed is not None and failed.state is ClaimState.FAILED and "already claimed" in failed.error
    assert setup.ledger.earnings(setup.node.address) == 1000


def test_a_retried_claim_already_paid_is_recognised_not_resent(setup: Setup) -> None:
    submitter = setup.submitter()
    claim = setup.claim("paid-earlier")
    submitter.enqueue(claim)
    assert submitter.flush() == 1
    again = submitter.store.get(claim.job_id)
    assert again is not None
    again.state, again.tx_hash = ClaimState.PENDING, ""  # as if its batch had been reported lost
    submitter.store.save([again])
    sent_before = submitter.metrics.value("claims_transactions_total")
    assert submitter.flush() == 1  # found on chain by its Settled event
    after = submitter.store.get(claim.job_id)
    assert after is not None and after.state is ClaimState.SETTLED and after.tx_hash
    assert submitter.metrics.value("claims_transactions_total") == sent_before  # nothing sent
    assert setup.ledger.earnings(setup.node.address) == 1000
