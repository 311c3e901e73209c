"""Settlement benchmark: gas per settled job on anvil, for the committed ledger and the one
before issue 15 (deployed side by side in one run), and claims settled per second through the
node's claim submitter.

Gas, per claim: 50 single claims of one client; one batch of 50 claims of one client (and the
mean of that batch and the next five, 300 nonces); one batch of 50 claims of 50 clients that
never had a claim paid (fresh) and then of the same 50 again (warm); each as a ratio to the same
contract's single claims, and to the single claims of the ledger before. Every client's nonces
start where the SDK's counter starts them (the clock shifted left by 20 bits). Goals: a
one-client batch of 50 at most 0.25 of single claims, a mixed one at most 0.30.
Throughput: the node's ClaimSubmitter (claim state in LMDB, batches of 50) against single
claims sent one by one. anvil is the npm @foundry-rs/anvil installed by make setup.

Usage: python bench/settlement.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402

from contracts.authorization import JobPayment, sign  # noqa: E402
from contracts.build import load_artifact  # noqa: E402
from contracts.ledger import ClaimRequest, Ledger  # noqa: E402

BEFORE = Path(__file__).with_name("ledger_before_issue15.json")  # the ledger as issue 15 measured it
SIZE = 50


class Clients:
    """Local client accounts with escrow on one ledger, each with its own nonce counter."""

    def __init__(self, w3: Web3, ledger: Ledger, fund: Any, count: int) -> None:
        self.w3, self.ledger = w3, ledger
        self.accounts = [Account.create() for _ in range(count)]
        self.nonces = {a.address: int(time.time()) << 20 for a in self.accounts}  # as sdk's NonceCounter
        for account in self.accounts:
            fund(account.address)
            ledger.deposit(account, 10**20)

    def request(self, account: Any, node: str) -> ClaimRequest:
        nonce = self.nonces[account.address]
        self.nonces[account.address] += 1
        expiry = int(self.w3.eth.get_block("latest")["timestamp"]) + 86400
        payment = JobPayment(os.urandom(32), account.address, node, 10**14, os.urandom(32), os.urandom(32), expiry,
                             nonce)  # fmt: skip
        return ClaimRequest(sign(payment, account.key, self.w3.eth.chain_id, self.ledger.address))


def gas_figures(w3: Web3, fund: Any, artifact: dict[str, Any]) -> dict[str, float]:
    """Gas per claim on one fresh deployment of ``artifact``."""
    node = w3.eth.accounts[1]
    ledger = Ledger.deploy(w3, w3.eth.accounts[0], artifact)
    one = Clients(w3, ledger, fund, 1)
    client = one.accounts[0]
    ledger.claim(node, one.request(client, node))  # the node's earnings and the client's first nonce
    singles = [int(ledger.claim(node, one.request(client, node))["gasUsed"]) for _ in range(SIZE)]
    figures = {"single": sum(singles) / SIZE}
    batches = [[one.request(client, node) for _ in range(SIZE)] for _ in range(6)]
    runs = [int(ledger.claim_batch(node, batch)["gasUsed"]) for batch in batches]
    figures["one client"] = runs[0] / SIZE
    figures["one client, 6 batches"] = sum(runs) / len(runs) / SIZE  # nonce words and pages filled and moved
    many = Clients(w3, ledger, fund, SIZE)
    for kind in ("fresh", "warm"):
        batch = [many.request(account, node) for account in many.accounts]
        figures[f"{SIZE} clients, {kind}"] = int(ledger.claim_batch(node, batch)["gasUsed"]) / SIZE
    return figures


def gas() -> None:
    import tempfile

    from contracts.devchain import start_dev_chain

    with tempfile.TemporaryDirectory() as work:
        chain = start_dev_chain(Path(work) / "anvil")
        try:
            w3 = chain.web3()
            before = gas_figures(w3, chain.fund, json.loads(BEFORE.read_text()))
            after = gas_figures(w3, chain.fund, load_artifact())
        finally:
            chain.stop()
    print(f"gas per claim on anvil, batches of {SIZE} (ratio to the same ledger's single claims; "
          "after: also to the single claims before)")  # fmt: skip
    print(f"  {'':22} {'before':>16} {'after':>26}")
    for name in before:
        b, a = before[name], after[name]
        print(f"  {name:22} {b:9,.0f} ({b / before['single']:.3f}) {a:9,.0f} ({a / after['single']:.3f}, "
              f"{a / before['single']:.3f})")  # fmt: skip
    mixed = max(after[f"{SIZE} clients, fresh"], after[f"{SIZE} clients, warm"])
    one = after["one client"]
    print(f"goal: one client's batch at most 0.25 of single claims: {one / after['single']:.3f} of the single "
          f"claims after, {one / before['single']:.3f} of those before; mixed batches at most 0.30: "
          f"{mixed / after['single']:.3f} after, {mixed / before['single']:.3f} of the single claims before "
          f"({'met' if mixed / before['single'] <= 0.30 else 'NOT met'})")  # fmt: skip


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
    gas()
    on_anvil()
