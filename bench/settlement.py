"""Settlement benchmark: gas per settled job, single claims against batches of 10, 50, 100.

Runs on web3's in-process EVM (eth-tester + py-evm, same gas schedule as anvil for this
contract); anvil via npm is not wired in yet. Goal: a batch of 50 costs at most 25% of
the gas of 50 single claims. Also claims settled per second (wall clock, in process).

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

from contracts.authorization import JobAuthorization, sign  # noqa: E402
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
        auth = JobAuthorization(os.urandom(32), client.address, node, 10**15, expiry, nonce)
        signed = sign(auth, client.key, w3.eth.chain_id, ledger.address)
        return ClaimRequest(signed, 10**14, b"\x01\x70\x12\x20" + os.urandom(32), os.urandom(32))

    singles = [int(ledger.claim(node, request())["gasUsed"]) for _ in range(20)]
    single = sum(singles[5:]) / len(singles[5:])  # past the first claims' fresh storage slots
    print(f"single claim: {single:,.0f} gas per job")
    for size in (10, 50, 100):
        batch = [request() for _ in range(size)]
        started = time.perf_counter()
        gas = int(ledger.claim_batch(node, batch)["gasUsed"])
        elapsed = time.perf_counter() - started
        print(f"batch of {size:3}: {gas / size:,.0f} gas per job, ratio to single {gas / size / single:.2f}, "
              f"{size / elapsed:,.0f} claims/s settled")  # fmt: skip


if __name__ == "__main__":
    main()
