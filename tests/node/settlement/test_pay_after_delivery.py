"""Money moves only for delivered, verified work: the red-team attacks, on a real anvil.

Two executors' settlement sides (a rogue and an honest one, each with its own chain key and
claim store) and a client wallet, all on one dev chain. The rogue holds everything an offer
gives it; the honest one delivers a signed receipt and is paid for exactly that receipt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents import receipt as receipts
from contracts.authorization import JobCommitment
from contracts.devchain import DevChain, start_dev_chain
from contracts.errors import AuthorizationError
from contracts.payment import Envelope, amount_for, chain_job_id, receipt_hash
from node.config import load_config
from node.identity import load_or_create
from node.metrics import Metrics
from node.settlement.claims import Claim, ClaimState
from node.settlement.service import NodeSettlement
from sdk.wallet import Delivered, Wallet
from storage.cid import CID

PRICE = 10**9  # wei per CPU-second
MAX_PAY = 10**15
CPU_SECONDS = 0.25


@pytest.fixture(scope="module")
def devchain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevChain]:
    chain = start_dev_chain(tmp_path_factory.mktemp("anvil"))
    yield chain
    chain.stop()


def _executor(chain: DevChain, data_dir: Path, price: int = PRICE) -> NodeSettlement:
    data_dir.mkdir(parents=True)
    config = load_config(None, {"node.data_dir": str(data_dir), "chain.rpc_url": chain.rpc_url,
                                "chain.contract": chain.contract, "capacity.price_per_cpu_second": price})  # fmt: skip
    settlement = NodeSettlement(config, load_or_create(data_dir), Metrics())
    chain.fund(settlement.address)
    settlement.chain_id = int(settlement.ledger.w3.eth.chain_id)  # what start() reads, without its loop
    return settlement


@dataclass
class World:
    chain: DevChain
    wallet: Wallet
    rogue: NodeSettlement
    honest: NodeSettlement
    path: Path

    def job(self, max_amount: int = MAX_PAY) -> tuple[str, Envelope]:
        job_id = os.urandom(16).hex()
        return job_id, self.wallet.commit(job_id, max_amount, PRICE)

    def run(self, node: NodeSettlement, job_id: str, commitment: Envelope) -> tuple[bytes, CID]:
        """What the executor does after an accepted offer: run, sign the receipt, keep the evidence."""
        node.commitment_for_offer(job_id, commitment.encode())
        identity = load_or_create(Path(node.claims._tables.path).parent)
        result = CID(b"\x01\x70\x12\x20" + os.urandom(32))
        usage = receipts.Usage(CPU_SECONDS, 1 << 20, 0.3, 10, 10)
        record = receipts.Receipt(job_id, CID(b"\x01\x70\x12\x20" + os.urandom(32)), {}, result, "ok", "wasm", "1",
                                  usage, time.time(), time.time(), identity.peer_id)  # fmt: skip
        signed = receipts.sign(record, identity.signing_key)
        node.delivered(job_id, commitment.encode(), signed, result, CPU_SECONDS)
        return signed, result

    def pay_for(self, node: NodeSettlement, job_id: str, commitment: Envelope, receipt: bytes, result: CID,
                amount: int | None = None) -> Envelope:  # fmt: skip
        """The client's side, as Job.pay does it: the amount the receipt's usage earns."""
        terms = commitment.signed.record
        assert isinstance(terms, JobCommitment)
        if amount is None:
            amount = amount_for(receipts.verify(receipt).usage.cpu_seconds, PRICE, terms.max_amount)
        earned = amount
        delivered = Delivered(node.address, earned, receipt_hash(receipt), bytes(result)[4:])
        return self.wallet.pay_delivered(job_id, commitment, [delivered])[node.address]

    def settlements(self, job_id: str) -> list[tuple[str, int]]:
        return [(s.node, s.amount) for s in self.wallet.ledger.settlements(chain_job_id(job_id))]


@pytest.fixture
def world(devchain: DevChain, tmp_path: Path) -> Iterator[World]:
    wallet = Wallet.open(devchain.rpc_url, devchain.contract, tmp_path / "client" / "client.key")
    devchain.fund(wallet.address)
    wallet.deposit(10**17)
    w = World(devchain, wallet, _executor(devchain, tmp_path / "rogue"), _executor(devchain, tmp_path / "honest"),
              tmp_path)  # fmt: skip
    yield w
    w.rogue.claims.close()
    w.honest.claims.close()


def test_the_rogue_that_declines_after_the_offer_is_paid_nothing(world: World) -> None:
    """Issue 12: a fresh identity takes the offer, claims maxAmount with a made-up result, and
    declines; the job fails over and the honest executor is paid. Now: one Settled, the honest one."""
    job_id, commitment = world.job()
    balance = world.wallet.balance()
    world.rogue.commitment_for_offer(job_id, commitment.encode())  # it sees what any offer carries
    misdirected = world.pay_for(world.rogue, job_id, commitment, *_fake(world), amount=MAX_PAY)
    with pytest.raises(AuthorizationError, match="delivered no paid job"):  # even a cheque it got hold of
        world.rogue.accept_payment(job_id, misdirected.encode())
    sig = commitment.signed  # the commitment's signature, made into a claim of maxAmount
    forged = Claim(job_id=job_id, chain_job_id=chain_job_id(job_id), client=world.wallet.address,
                   node=world.rogue.address, amount=MAX_PAY, expiry=int(time.time()) + 3600, nonce=1, v=sig.v,
                   r=sig.r, s=sig.s, result_cid=b"\x01\x70\x12\x20" + os.urandom(32),
                   receipt_hash=os.urandom(32))  # fmt: skip
    assert world.rogue.submitter.enqueue(forged)
    assert world.rogue.submitter.flush() == 0
    (refused,) = world.rogue.claims.all()
    assert refused.state is ClaimState.FAILED and "not signed by the client" in refused.error

    receipt, result = world.run(world.honest, job_id, commitment)  # the failover
    payment = world.pay_for(world.honest, job_id, commitment, receipt, result)
    world.honest.accept_payment(job_id, payment.encode())
    assert world.honest.submitter.flush() == 1
    earned = amount_for(CPU_SECONDS, PRICE, MAX_PAY)
    assert world.settlements(job_id) == [(world.honest.address, earned)]
    assert world.wallet.balance() == balance - earned
    assert world.wallet.ledger.earnings(world.rogue.address) == 0


def _fake(world: World) -> tuple[bytes, CID]:
    """A receipt the rogue could sign for a job it never ran (its own key, a made-up result)."""
    return os.urandom(100), CID(b"\x01\x70\x12\x20" + os.urandom(32))


def test_the_executor_refuses_a_payment_bound_to_another_receipt_or_node(world: World) -> None:
    job_id, commitment = world.job()
    receipt, result = world.run(world.honest, job_id, commitment)
    other_receipt = world.pay_for(world.honest, job_id, commitment, os.urandom(64), result, amount=10)
    with pytest.raises(AuthorizationError, match="another receipt"):
        world.honest.accept_payment(job_id, other_receipt.encode())
    (world.path / "client" / "client.key.paid" / f"{job_id}.cbor").unlink()  # let the wallet sign anew
    for_rogue = world.pay_for(world.rogue, job_id, commitment, receipt, result)
    with pytest.raises(AuthorizationError, match="not this node"):
        world.honest.accept_payment(job_id, for_rogue.encode())
    assert world.honest.claims.all() == [] and world.honest.claims.delivery(job_id) is not None


def test_a_delivered_job_is_paid_exactly_once(world: World) -> None:
    job_id, commitment = world.job()
    receipt, result = world.run(world.honest, job_id, commitment)
    payment = world.pay_for(world.honest, job_id, commitment, receipt, result)
    assert world.pay_for(world.honest, job_id, commitment, receipt, result) == payment  # signed once per (job, node)
    first = world.honest.accept_payment(job_id, payment.encode())
    assert world.honest.accept_payment(job_id, payment.encode()).nonce == first.nonce  # a resend changes nothing
    assert world.honest.submitter.flush() == 1
    assert world.honest.submitter.flush() == 0
    (world.path / "client" / "client.key.paid" / f"{job_id}.cbor").unlink()
    second = world.pay_for(world.honest, job_id, commitment, receipt, result)  # a second cheque, another nonce
    assert second.signed.record != payment.signed.record
    with pytest.raises(AuthorizationError, match="already paid"):
        world.honest.accept_payment(job_id, second.encode())
    assert world.honest.submitter.flush() == 0
    assert world.settlements(job_id) == [(world.honest.address, amount_for(CPU_SECONDS, PRICE, MAX_PAY))]


def test_a_client_that_pays_short_or_never_is_refused_later(world: World) -> None:
    job_id, commitment = world.job()
    receipt, result = world.run(world.honest, job_id, commitment)
    world.honest.accept_payment(job_id, world.pay_for(world.honest, job_id, commitment, receipt, result, 1).encode())
    next_job, next_terms = world.job()
    with pytest.raises(AuthorizationError, match=r"no longer works for .* paid 1 wei"):
        world.honest.commitment_for_offer(next_job, next_terms.encode())

    # another client-executor pair: delivered, never paid, the commitment lapses
    job_id, commitment = world.job()
    world.run(world.rogue, job_id, commitment)  # here the rogue is simply a node the client never pays
    (evidence,) = world.rogue.claims.unpaid(world.wallet.address)
    assert evidence.commitment == commitment.encode() and evidence.earned == amount_for(CPU_SECONDS, PRICE, MAX_PAY)
    world.rogue._refuse_lapsed(world.wallet.address, now=evidence.expiry + 1)
    later, terms = world.job()
    with pytest.raises(AuthorizationError, match="delivered and never paid"):
        world.rogue.commitment_for_offer(later, terms.encode())
