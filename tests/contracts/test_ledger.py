"""The settlement contract on web3's in-process EVM (eth-tester + py-evm)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_account import Account
from web3 import EthereumTesterProvider, Web3

from contracts.authorization import JobCommitment, JobPayment, Signed, digest, sign
from contracts.build import compile_source, load_artifact
from contracts.errors import ChainError
from contracts.ledger import ClaimRequest, Ledger

ETHER = 10**18


@dataclass
class Chain:
    w3: Web3
    ledger: Ledger
    client: Any  # LocalAccount
    node: str
    other_node: str
    chain_id: int


@pytest.fixture
def chain() -> Iterator[Chain]:
    w3 = Web3(EthereumTesterProvider())
    accounts = w3.eth.accounts
    client = Account.create()
    w3.eth.send_transaction({"from": accounts[0], "to": client.address, "value": 100 * ETHER})
    ledger = Ledger.deploy(w3, accounts[0])
    yield Chain(w3, ledger, client, accounts[1], accounts[2], w3.eth.chain_id)


def _now(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def _deposit(chain: Chain, amount: int) -> None:
    tx = chain.ledger.contract.functions.deposit().build_transaction(
        {
            "from": chain.client.address,
            "value": amount,
            "nonce": chain.w3.eth.get_transaction_count(chain.client.address),
        }
    )
    signed = chain.client.sign_transaction(tx)
    chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_raw_transaction(signed.raw_transaction))


def _payment(chain: Chain, nonce: int, amount: int = 10, node: str | None = None, expiry: int | None = None,
             receipt_hash: bytes | None = None, client: Any = None) -> JobPayment:  # fmt: skip
    client = client or chain.client
    return JobPayment(os.urandom(32), client.address, node or chain.node, amount, receipt_hash or os.urandom(32),
                      os.urandom(32), expiry or _now(chain) + 3600, nonce)  # fmt: skip


def _request(chain: Chain, nonce: int, amount: int = 10, node: str | None = None, expiry: int | None = None,
             client: Any = None) -> ClaimRequest:  # fmt: skip
    client = client or chain.client
    payment = _payment(chain, nonce, amount, node, expiry, client=client)
    return ClaimRequest(sign(payment, client.key, chain.chain_id, chain.ledger.address))


def _altered(request: ClaimRequest, **changes: Any) -> ClaimRequest:
    """The same signature over a payment with some fields changed: what a greedy node would try."""
    s = request.signed
    return ClaimRequest(Signed(replace(request.payment, **changes), s.v, s.r, s.s))


def test_artifact_matches_a_fresh_compile() -> None:
    assert compile_source()["bytecode"] == load_artifact()["bytecode"]


def test_digest_matches_the_contract(chain: Chain) -> None:
    p = JobPayment(b"\x07" * 32, chain.client.address, chain.node, 5, b"\x08" * 32, b"\x09" * 32, 123, 9)
    on_chain = chain.ledger.contract.functions.payment_digest(
        p.job_id, p.client, p.node, p.amount, p.receipt_hash, p.result_digest, p.expiry, p.nonce
    ).call()
    assert bytes(on_chain) == digest(p, chain.chain_id, chain.ledger.address)


def test_a_commitment_can_never_be_claimed(chain: Chain) -> None:
    """The offer's commitment is signed by the same client on the same domain, yet no claim of
    it verifies: its EIP-712 type differs, so its digest is no JobPayment's."""
    _deposit(chain, 1000)
    job = os.urandom(32)
    commitment = sign(JobCommitment(job, chain.client.address, 1000, 10, 0, _now(chain) + 3600), chain.client.key,
                      chain.chain_id, chain.ledger.address)  # fmt: skip
    for amount in (1000, 1, 0):
        claim = JobPayment(job, chain.client.address, chain.node, amount, os.urandom(32), os.urandom(32),
                           _now(chain) + 3600, 0)  # fmt: skip
        forged = ClaimRequest(Signed(claim, commitment.v, commitment.r, commitment.s))
        _refused(chain, chain.node, forged, "not signed by the client")
    assert chain.ledger.balance(chain.client.address) == 1000 and chain.ledger.earnings(chain.node) == 0


def test_claim_pays_the_node_and_emits_settled(chain: Chain) -> None:
    _deposit(chain, 1000)
    request = _request(chain, nonce=0, amount=40)
    receipt = chain.ledger.claim(chain.node, request)
    assert chain.ledger.balance(chain.client.address) == 960 and chain.ledger.earnings(chain.node) == 40
    (settled,) = chain.ledger.settlements_in(receipt)
    assert settled.result_cid == request.result_cid and settled.amount == 40
    assert settled.job_id == request.payment.job_id
    assert settled.node == chain.node and settled.receipt_hash == request.payment.receipt_hash
    assert settled.client == chain.client.address and chain.ledger.settlements(settled.job_id) == [settled]


def _refused(chain: Chain, node: str, request: ClaimRequest, reason: str) -> None:
    with pytest.raises(Exception, match=reason):
        chain.ledger.claim(node, request)


def test_refusals(chain: Chain) -> None:
    _deposit(chain, 100)
    first = _request(chain, nonce=1, amount=10)
    chain.ledger.claim(chain.node, first)
    _refused(chain, chain.node, first, "already claimed")  # replay of the same payment
    _refused(chain, chain.node, _request(chain, nonce=3, amount=95), "balance too low")
    _refused(chain, chain.other_node, _request(chain, nonce=4), "not signed by the client")  # another node
    forged = _request(chain, nonce=5)
    forged = ClaimRequest(Signed(forged.payment, forged.signed.v, forged.signed.r, os.urandom(32)))
    _refused(chain, chain.node, forged, "not signed by the client")
    _refused(chain, chain.node, _request(chain, nonce=6, expiry=_now(chain) - 1), "expired")
    _refused(chain, chain.node, _request(chain, nonce=7, expiry=_now(chain) + 30 * 86400), "too far ahead")
    assert chain.ledger.balance(chain.client.address) == 90 and chain.ledger.earnings(chain.node) == 10


def test_a_claim_above_the_receipts_usage_is_refused(chain: Chain) -> None:
    """The client signed what the receipt's CPU-seconds earn; a node asking one wei more is refused."""
    _deposit(chain, 1000)
    signed = _request(chain, nonce=10, amount=37)
    for greedy in (38, 1000, 2**127):
        _refused(chain, chain.node, _altered(signed, amount=greedy), "not signed by the client")
    chain.ledger.claim(chain.node, signed)
    assert chain.ledger.earnings(chain.node) == 37


def test_a_claim_with_another_receipt_hash_or_result_is_refused(chain: Chain) -> None:
    _deposit(chain, 1000)
    signed = _request(chain, nonce=11, amount=20)
    _refused(chain, chain.node, _altered(signed, receipt_hash=os.urandom(32)), "not signed by the client")
    _refused(chain, chain.node, _altered(signed, result_digest=os.urandom(32)), "not signed by the client")
    _refused(chain, chain.node, _altered(signed, job_id=os.urandom(32)), "not signed by the client")
    assert chain.ledger.earnings(chain.node) == 0


def test_a_delivered_job_is_paid_exactly_once(chain: Chain) -> None:
    _deposit(chain, 1000)
    signed = _request(chain, nonce=12, amount=25)
    receipt = chain.ledger.claim(chain.node, signed)
    assert len(chain.ledger.settlements_in(receipt)) == 1
    _refused(chain, chain.node, signed, "already claimed")
    with pytest.raises(Exception, match="already claimed"):
        chain.ledger.claim_batch(chain.node, [signed])
    assert chain.ledger.earnings(chain.node) == 25 and chain.ledger.balance(chain.client.address) == 975


def test_batch_settles_many_and_refuses_a_double_inside(chain: Chain) -> None:
    _deposit(chain, 10_000)
    batch = [_request(chain, nonce=100 + i, amount=5) for i in range(20)]
    chain.ledger.claim_batch(chain.node, batch)
    assert chain.ledger.earnings(chain.node) == 100
    with pytest.raises(Exception, match="already claimed"):
        chain.ledger.claim_batch(chain.node, [_request(chain, nonce=200), batch[0]])
    assert chain.ledger.earnings(chain.node) == 100  # the whole batch reverted


def _client_request(chain: Chain, client: Any, nonce: int, amount: int) -> ClaimRequest:
    return _request(chain, nonce, amount, client=client)


def test_batch_of_interleaved_clients_and_nonce_words(chain: Chain) -> None:
    """Balances and nonce words are written once per run of one client; runs must not mix up."""
    other = Account.create()
    chain.w3.eth.send_transaction({"from": chain.w3.eth.accounts[0], "to": other.address, "value": ETHER})
    _deposit(chain, 1000)
    chain.ledger.deposit(other, 500)  # (a local account: signed here)
    me = chain.client
    batch = [
        _client_request(chain, me, 254, 10), _client_request(chain, me, 255, 10),
        _client_request(chain, me, 256, 10),  # the next nonce word
        _client_request(chain, other, 1, 7), _client_request(chain, me, 257, 10),
    ]  # fmt: skip
    chain.ledger.claim_batch(chain.node, batch)
    assert chain.ledger.balance(me.address) == 960 and chain.ledger.balance(other.address) == 493
    assert all(chain.ledger.nonce_used(me.address, n) for n in (254, 255, 256, 257))
    assert not chain.ledger.nonce_used(me.address, 253) and chain.ledger.nonce_used(other.address, 1)
    # a double in a later run of the same client is caught from storage
    with pytest.raises(Exception, match="already claimed"):
        chain.ledger.claim_batch(chain.node, [_client_request(chain, me, 400, 1), _client_request(chain, other, 2, 1),
                                              _client_request(chain, me, 400, 1)])  # fmt: skip
    # a run that adds up past the client's escrow is refused as a whole
    with pytest.raises(Exception, match="balance too low"):
        chain.ledger.claim_batch(chain.node, [_client_request(chain, other, 10 + i, 100) for i in range(5)])
    assert chain.ledger.balance(other.address) == 493 and chain.ledger.earnings(chain.node) == 47


def test_claims_the_ledger_cannot_encode_are_refused_before_sending(chain: Chain) -> None:
    request = _request(chain, nonce=1)
    with pytest.raises(ChainError, match="128 bits"):
        _altered(request, amount=2**128).as_tuple()
    with pytest.raises(ChainError, match="32 bytes"):
        _altered(request, result_digest=b"short").as_tuple()


def test_withdrawal_waits_out_every_authorisation(chain: Chain) -> None:
    _deposit(chain, 100)
    functions = chain.ledger.contract.functions
    pending = _request(chain, nonce=300, amount=30)  # accepted by the node before the withdrawal
    _send = chain.client.sign_transaction

    def client_call(call: Any) -> None:
        tx = call.build_transaction(
            {"from": chain.client.address, "nonce": chain.w3.eth.get_transaction_count(chain.client.address)}
        )
        chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_raw_transaction(_send(tx).raw_transaction))

    client_call(functions.request_withdrawal(100))
    with pytest.raises(Exception, match="still locked"):
        client_call(functions.withdraw())
    chain.ledger.claim(chain.node, pending)  # the node still gets paid during the delay
    chain.w3.provider.ethereum_tester.time_travel(_now(chain) + 8 * 86400 + 1)  # type: ignore[union-attr]
    chain.w3.provider.ethereum_tester.mine_blocks()  # type: ignore[union-attr]
    client_call(functions.withdraw())
    assert chain.ledger.balance(chain.client.address) == 0 and chain.ledger.earnings(chain.node) == 30


def test_registry_binds_an_address_to_a_peer_id(chain: Chain) -> None:
    peer = b"12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
    receipt = chain.ledger.register(chain.node, peer, os.urandom(64))
    assert chain.ledger.contract.functions.peerIdOf(chain.node).call() == peer
    (event,) = chain.ledger.contract.events.NodeRegistered().process_receipt(receipt)
    assert event["args"]["peerId"] == peer


def test_stake_is_locked_and_leaves_only_after_the_delay(chain: Chain) -> None:
    node = Account.create()
    chain.w3.eth.send_transaction({"from": chain.w3.eth.accounts[0], "to": node.address, "value": ETHER})
    chain.ledger.stake(node, 10**17)
    assert chain.ledger.stake_of(node.address) == 10**17
    with pytest.raises(Exception, match="amount exceeds stake"):
        chain.ledger.request_unstake(node, 10**17 + 1)
    with pytest.raises(Exception, match="no unstake requested"):
        chain.ledger.unstake(node)
    chain.ledger.request_unstake(node, 4 * 10**16)
    assert chain.ledger.stake_of(node.address) == 6 * 10**16  # stops counting at once
    with pytest.raises(Exception, match="still locked"):
        chain.ledger.unstake(node)
    chain.w3.provider.ethereum_tester.time_travel(_now(chain) + 8 * 86400 + 1)  # type: ignore[union-attr]
    chain.w3.provider.ethereum_tester.mine_blocks()  # type: ignore[union-attr]
    before = chain.w3.eth.get_balance(node.address)
    chain.ledger.unstake(node)
    assert chain.w3.eth.get_balance(node.address) > before + 3 * 10**16  # 4e16 back, less gas
    assert chain.ledger.stake_of(node.address) == 6 * 10**16


def _funded_clients(chain: Chain, count: int, deposit: int) -> list[Any]:
    """Clients with ``deposit`` wei of escrow each (gas given: the tester's estimates are slow)."""
    clients = [Account.create() for _ in range(count)]
    for client in clients:
        funder = chain.w3.eth.accounts[0]
        chain.w3.eth.send_transaction({"from": funder, "to": client.address, "value": ETHER, "gas": 21_000})
        tx = chain.ledger.contract.functions.deposit().build_transaction(
            {"from": client.address, "value": deposit, "gas": 100_000, "nonce": 0}
        )
        chain.w3.eth.send_raw_transaction(client.sign_transaction(tx).raw_transaction)
    return clients


def _batch(chain: Chain, requests: list[ClaimRequest]) -> Any:
    """claim_batch with the gas given (the tester's estimate runs the batch many times over)."""
    call = chain.ledger.contract.functions.claim_batch([r.as_tuple() for r in requests])
    receipt = chain.w3.eth.wait_for_transaction_receipt(call.transact({"from": chain.node, "gas": 5_000_000}))
    assert receipt["status"] == 1
    return receipt


def test_a_batch_of_many_clients_debits_each_its_own_claims(chain: Chain) -> None:
    """Runs of several clients, some interleaved, each client's first claim ever among them: each
    balance loses exactly its own claims, each claim is logged with its own client and amount."""
    a, b, c = _funded_clients(chain, 3, 1000)
    plan = [(a, 0, 11), (a, 1, 12), (b, 5, 21), (c, 9, 31), (b, 6, 22), (a, 2, 13), (c, 70, 32)]
    batch = [_client_request(chain, client, nonce, amount) for client, nonce, amount in plan]
    receipt = _batch(chain, batch)
    assert [chain.ledger.balance(x.address) for x in (a, b, c)] == [1000 - 36, 1000 - 43, 1000 - 63]
    assert chain.ledger.earnings(chain.node) == 36 + 43 + 63
    logged = chain.ledger.settlements_in(receipt)
    assert [(s.client, s.amount, s.node) for s in logged] == [(x.address, n, chain.node) for x, _, n in plan]
    assert [s.job_id for s in logged] == [r.payment.job_id for r in batch]
    assert all(chain.ledger.nonce_used(x.address, nonce) for x, nonce, _ in plan)
    assert not chain.ledger.nonce_used(a.address, 3) and not chain.ledger.nonce_used(c.address, 10)


def test_replays_are_refused_across_batches_and_nonce_pages(chain: Chain) -> None:
    """A client's used nonces sit in its state word (the newest page of 64) or in the page map
    (older pages); a replay is refused from either, a nonce never used is paid from either."""
    (me,) = _funded_clients(chain, 1, 10_000)
    base = int(time.time()) << 20  # where the SDK's nonce counter starts
    first = [_client_request(chain, me, base + n, 1) for n in (0, 1, 63)]  # page P
    _batch(chain, first)
    later = [_client_request(chain, me, base + n, 1) for n in (64, 200)]  # pages P+1, P+3: P moves out
    _batch(chain, later)
    for old in (*first, *later):  # replays, alone
        _refused(chain, chain.node, old, "already claimed")
    for old in (first[0], later[1]):  # and batched after a claim of another page
        with pytest.raises(Exception, match="already claimed"):
            chain.ledger.claim_batch(chain.node, [_client_request(chain, me, base + 300, 1), old])
    late = [_client_request(chain, me, base + n, 1) for n in (2, 65, 199)]  # unused nonces of older pages
    _batch(chain, late)
    with pytest.raises(Exception, match="already claimed"):
        chain.ledger.claim_batch(chain.node, [_client_request(chain, me, base + 3, 1), late[1]])
    used = {0, 1, 2, 63, 64, 65, 199, 200}
    near = {m for n in used for m in (n - 1, n, n + 1)} | {-1, 127, 128, 300}
    assert {n for n in near if chain.ledger.nonce_used(me.address, base + n)} == used
    assert chain.ledger.balance(me.address) == 10_000 - len(used) and chain.ledger.earnings(chain.node) == len(used)


def test_a_nonce_far_ahead_leaves_the_clients_other_nonces_claimable_once(chain: Chain) -> None:
    """A client that signs the largest nonce moves its newest page to the top; every lower nonce
    is then checked in the page map, still paid once."""
    (me,) = _funded_clients(chain, 1, 1000)
    _batch(chain, [_client_request(chain, me, 5, 1), _client_request(chain, me, 2**64 - 1, 1)])
    again = _client_request(chain, me, 6, 1)
    chain.ledger.claim(chain.node, again)
    for replay in (again, _client_request(chain, me, 5, 1), _client_request(chain, me, 2**64 - 1, 1)):
        with pytest.raises(Exception, match="already claimed"):
            chain.ledger.claim(chain.node, replay)
    assert chain.ledger.balance(me.address) == 997
    assert [chain.ledger.nonce_used(me.address, n) for n in (4, 5, 6, 2**64 - 2, 2**64 - 1)] == [0, 1, 1, 0, 1]


def test_each_further_client_in_a_batch_costs_one_state_word(chain: Chain) -> None:
    """The gas a batch of 10 clients' claims costs beyond a batch of one client's 10: one cold
    read and one write of each client's word (5k), not a balance and a fresh nonce slot (27k)."""
    clients = _funded_clients(chain, 10, 1000)
    base = int(time.time()) << 20
    (one,) = _funded_clients(chain, 1, 1000)
    chain.ledger.claim(chain.node, _client_request(chain, one, base, 1))  # the node's earnings exist
    single = int(_batch(chain, [_client_request(chain, one, base + 1 + n, 1) for n in range(10)])["gasUsed"])
    mixed = int(_batch(chain, [_client_request(chain, c, base, 1) for c in clients])["gasUsed"])
    assert (mixed - single) / 10 < 5_500, (mixed, single)


def test_a_settlement_log_is_told_from_other_logs(chain: Chain) -> None:
    (me,) = _funded_clients(chain, 1, 100)
    deposit = chain.ledger.deposit(me, 1)  # another event of the ledger, not a settlement
    assert chain.ledger.settlements_in(deposit) == []
    claimed = chain.ledger.claim(chain.node, _client_request(chain, me, 1, 5))
    (settled,) = chain.ledger.settlements_in(claimed)
    assert chain.ledger.settlements(settled.job_id) == [settled] and chain.ledger.settlements(os.urandom(32)) == []
