"""Settlement benchmark: gas per settled job, single claims against batches of 10, 50, 100,
and claims settled per second on anvil through the node's claim submitter.

Gas runs on web3's in-process EVM (eth-tester + py-evm, same gas schedule as anvil for this
contract). Goal: a batch of 50 costs at most 25% of the gas of 50 single claims.
Throughput runs on a real anvil (npm @foundry-rs/anvil, installed by make setup): the node's
ClaimSubmitter (claim state in LMDB, batches of 50) against single claims sent one by one.

Usage: python bench/settlement.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eth_account import Account  # noqa: E402
from web3 import EthereumTesterProvider, Web3  # noqa: E402

from contracts.authorization import JobPayment, sign  # noqa: E402
from contracts.ledger import ClaimRequest, Ledger  # noqa: E402


def main() -> None:
    w3 = Web3(EthereumTesterProvider())
    funder, node = w3.eth.accounts[0], w3.eth.accounts[1]
    client = Account.create()
    w3.eth.send_transaction({"from": funder, "to": client.address, "value": 10**21})
    ledger = Ledger.deploy(w3, funder)
    deposit = ledger.contract.functions.deposit().build_transaction(
        {"from": client.address, "value": 10**20, "nonce": w3.eth.get_transaction_count(client.address)}
    )
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(client.sign_transaction(deposit).raw_transaction))
    expiry = int(w3.eth.get_block("latest")["timestamp"]) + 86400
    nonce = 0

    def request() -> ClaimRequest:
        nonlocal nonce
        nonce += 1
        job, receipt, result = os.urandom(32), os.urandom(32), os.urandom(32)
        payment = JobPayment(job, client.address, node, 10**14, receipt, result, expiry, nonce)
        return ClaimRequest(sign(payment, client.key, w3.eth.chain_id, ledger.address))

    singles = [int(ledger.claim(node, request())["gasUsed"]) for _ in range(20)]
    single = sum(singles[5:]) / len(singles[5:])  # past the first claims' fresh storage slots
    print(f"single claim: {single:,.0f} gas per job")
    ratios: dict[int, float] = {}
    for size in (10, 50, 100):
        batch = [request() for _ in range(size)]
        started = time.perf_counter()
        gas = int(ledger.claim_batch(node, batch)["gasUsed"])
        elapsed = time.perf_counter() - started
        ratios[size] = gas / size / single
        print(f"batch of {size:3}: {gas / size:,.0f} gas per job, ratio to single {gas / size / single:.3f}, "
              f"{size / elapsed:,.0f} claims/s settled")  # fmt: skip
    verdict = "met" if ratios[50] <= 0.25 else "NOT met"
    print(f"goal: a batch of 50 costs at most 0.25 of 50 single claims: {verdict} ({ratios[50]:.3f})")


def on_anvil(total: int = 500, batch: int = 50) -> None:
    import tempfile

    from contracts.devchain import start_dev_chain
    from contracts.payment import commit, pay
    from node.metrics import Metrics
    from node.settlement.claims import Claim, ClaimStore
    from node.settlement.submitter import ClaimSubmitter

    with tempfile.TemporaryDirectory() as work:
        chain = start_dev_chain(Path(work) / "anvil")
        try:
            node, client = Account.create(), Account.create()
            chain.fund(node.address)
            chain.fund(client.address)
            ledger = Ledger(chain.web3(), chain.contract)
            ledger.deposit(client, 10**20)
            chain_id = ledger.w3.eth.chain_id

            def claim(index: int) -> Claim:
                job = f"bench-{index}"
                terms = commit(job, client.key, 10**15, 10**9, chain_id, ledger.address)
                payment = pay(terms, client.key, node.address, 10**12, os.urandom(32), os.urandom(32), index + 1)
                return Claim.of(job, payment.signed)

            singles = [claim(total + i) for i in range(50)]
            started = time.perf_counter()
            for item in singles:
                ledger.claim(node, item.request())
            single_rate = len(singles) / (time.perf_counter() - started)

            submitter = ClaimSubmitter(ClaimStore(Path(work) / "claims"), ledger, node, Metrics(), batch)
            for index in range(total):
                submitter.enqueue(claim(index))
            started = time.perf_counter()
            settled = submitter.flush()
            elapsed = time.perf_counter() - started
            gas = submitter.metrics.value("claims_gas_total") / max(settled, 1)
            print(f"anvil: {settled} claims settled by the node's submitter in batches of {batch}: "
                  f"{settled / elapsed:,.0f} claims/s, {gas:,.0f} gas per claim")  # fmt: skip
            print(f"anvil: single claims one by one (sign, send, wait): {single_rate:,.0f} claims/s; "
                  f"ratio {settled / elapsed / single_rate:.1f}x")  # fmt: skip
        finally:
            chain.stop()


if __name__ == "__main__":
    main()
    on_anvil()
