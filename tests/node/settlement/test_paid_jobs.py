"""Paid jobs end to end: real nodes, a real dev chain (anvil), the SDK signing on the client side."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from contracts.devchain import fund
from contracts.payment import amount_for, chain_job_id
from node.cluster import ClusterChain, http_json, read_cluster_chain
from sdk import SyncClient, VerificationError, Wallet, verify_settlement
from tests.support import REPO_ROOT

PRICE = 10**9  # wei per CPU-second
MAX_PAY = 10**15


def _post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]


def funded_client(cluster_dir: Path, tmp_path: Path) -> tuple[ClusterChain, Wallet]:
    """The cluster's dev chain and a client wallet holding 0.1 ETH in escrow."""
    chain = read_cluster_chain(cluster_dir)
    assert chain is not None
    wallet = Wallet.open(chain.rpc_url, chain.contract, tmp_path / "client.key")
    fund(chain.rpc_url, wallet.address)
    wallet.deposit(10**17)
    return chain, wallet


def wait_claims(api_url: str, settled: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claims: list[dict[str, Any]] = http_json(f"{api_url}/v1/ledger/claims")["claims"]
        if sum(1 for c in claims if c["state"] == "settled") >= settled:
            return claims
        time.sleep(0.2)
    raise AssertionError(f"claims did not settle: {http_json(f'{api_url}/v1/ledger/claims')}")


def test_paid_job_settles_once_and_verifies(cluster: Any, tmp_path: Path) -> None:
    nodes = cluster(2, chain=True, price=PRICE, batch_size=2, batch_interval=1.0)
    chain, wallet = funded_client(cluster.directories[0], tmp_path)
    requester, holder = nodes
    assert wallet.balance() == 10**17

    with SyncClient(holder.api_url) as at_holder:
        text = at_holder.put(b"to be or not to be that is the question\n" * 1000)
    with SyncClient(requester.api_url, wallet=wallet) as client:
        agent = client.deploy(REPO_ROOT / "examples" / "wasm-wordcount")
        job = client.run(agent, {"text": text}, pay=MAX_PAY)  # waits, verifies the receipt, then pays
        assert job.node == holder.peer_id  # placed next to the data
        earned = amount_for(job.receipt().usage.cpu_seconds, PRICE, MAX_PAY)
        assert job.payments[holder.peer_id] == {"accepted": True, "reason": "claim queued", "amount": str(earned)}
        # an unpaid job is refused by nodes that charge, with the reason
        with pytest.raises(Exception, match="charges"):
            client.run(agent, {"text": text})
        claims = wait_claims(holder.api_url, 1)
        assert [c["job_id"] for c in claims] == [job.job_id]
        checks = job.verify_settlement()
        assert len(checks) == 1
        check = checks[0]
        assert check.node_peer_id == holder.peer_id and check.result == str(job.result_cid)
        assert check.amount == earned  # exactly what the receipt's CPU-seconds earn, not maxAmount
        assert wallet.balance() == 10**17 - check.amount
        assert job.pay()[holder.peer_id]["accepted"]  # paying again resends the same cheque: no second claim
        assert len(job.verify_settlement()) == 1
        receipt = job.receipt()
        assert receipt.result == job.result_cid
        out = job.result(tmp_path / "result")
        assert out.exists()

    # malformed or misdirected payments are refused at submission, with the reason
    body = {"agent": str(agent), "inputs": {"text": str(text)}}
    other = wallet.commit("a" * 32, MAX_PAY, PRICE).encode().hex()
    for extra, status, error in (
        ({"payment": other}, 400, "bad_job"),  # no job_id: a payment is signed for one
        ({"payment": "zz", "job_id": "b" * 32}, 400, "bad_job"),
        ({"payment": other, "job_id": "b" * 32}, 400, "bad_payment"),  # committed for job aaaa..., not bbbb...
        ({"job_id": job.job_id}, 409, "job_exists"),
        ({"job_id": "not-hex"}, 400, "bad_job"),
    ):
        answer = _post(f"{requester.api_url}/v1/jobs", {**body, **extra})
        assert answer == (status, error), extra

    ledger = wallet.ledger
    assert ledger.earnings(http_json(f"{holder.api_url}/v1/ledger")["address"]) == check.amount
    assert ledger.settlements(chain_job_id(job.job_id))[0].amount == check.amount
    # the chain's record does not match a different receipt
    with pytest.raises(VerificationError):
        verify_settlement(job.job_id, chain.rpc_url, chain.contract, result=str(agent))
    ledger_info = http_json(f"{holder.api_url}/v1/ledger")
    assert ledger_info["claims"]["settled"] == 1 and ledger_info["registered"]
    with urllib.request.urlopen(f"{holder.api_url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'mycel_claims{state="settled"} 1.0' in metrics and "mycel_claims_gas_total" in metrics


def test_a_killed_node_claims_after_restart_exactly_once(cluster: Any, tmp_path: Path) -> None:
    """The claim is in LMDB before the job's answer leaves; SIGKILL before the batch is sent
    loses nothing, and the restarted node settles it once."""
    import signal as signals

    from node.cluster import start_node_process, wait_answering, wait_for_peers

    nodes = cluster(2, chain=True, price=PRICE, batch_size=100, batch_interval=600.0)  # no batch before the kill
    chain, wallet = funded_client(cluster.directories[0], tmp_path)
    requester, holder = nodes
    with SyncClient(holder.api_url) as at_holder:
        text = at_holder.put(b"alpha beta gamma\n")
    with SyncClient(requester.api_url, wallet=wallet) as client:
        job = client.run(client.deploy(REPO_ROOT / "examples" / "wasm-wordcount"), {"text": text}, pay=MAX_PAY)
    assert job.node == holder.peer_id
    pending = http_json(f"{holder.api_url}/v1/ledger/claims")["claims"]
    assert [c["state"] for c in pending] == ["pending"]

    os_kill(holder.pid, signals.SIGKILL)
    env = {"MYCEL_CHAIN_RPC_URL": chain.rpc_url, "MYCEL_CHAIN_CONTRACT": chain.contract,
           "MYCEL_CAPACITY_PRICE_PER_CPU_SECOND": str(PRICE), "MYCEL_CHAIN_BATCH_INTERVAL": "0.5"}  # fmt: skip
    proc = start_node_process(Path(holder.data_dir), holder.listen, holder.api, [requester.multiaddr], holder.region,
                              env)  # fmt: skip
    try:
        wait_answering(proc, holder.api_url, Path(holder.data_dir) / "node.log")
        wait_for_peers(holder.api_url, 1, timeout=30)
        claims = wait_claims(holder.api_url, 1)
        assert [(c["job_id"], c["state"]) for c in claims] == [(job.job_id, "settled")]
        assert len(wallet.ledger.settlements(chain_job_id(job.job_id))) == 1
        time.sleep(1.5)  # a few more batch rounds: nothing is claimed again
        assert len(wallet.ledger.settlements(chain_job_id(job.job_id))) == 1
    finally:
        proc.send_signal(signals.SIGTERM)
        assert proc.wait(20) == 0


def os_kill(pid: int, sig: int) -> None:
    import os

    from node.cluster import process_alive

    os.kill(pid, sig)
    deadline = time.monotonic() + 10
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_paid_job_skips_a_node_whose_address_the_ledger_does_not_bind(cluster: Any, tmp_path: Path) -> None:
    from contracts.keys import load_or_create_key

    nodes = cluster(2, chain=True, price=PRICE, batch_size=1)
    _chain, wallet = funded_client(cluster.directories[0], tmp_path)
    requester, holder = nodes
    holder_key = load_or_create_key(Path(holder.data_dir) / "chain.key")
    wallet.ledger._send(wallet.ledger.contract.functions.deregister(), holder_key)  # unbound, still announced
    with SyncClient(holder.api_url) as at_holder:
        text = at_holder.put(b"data that lives on the holder\n")
    with SyncClient(requester.api_url, wallet=wallet) as client:
        job = client.run(client.deploy(REPO_ROOT / "examples" / "wasm-wordcount"), {"text": text}, pay=MAX_PAY)
        assert job.node == requester.peer_id  # not the data's holder: it could not prove its address
        refused = {c["peer_id"]: c["reason"] for c in job.explain() if c["verdict"] == "refused"}
        assert "settles on no chain" in refused[holder.peer_id]


def test_a_paid_job_asking_for_stake_skips_a_node_that_staked_less(cluster: Any, tmp_path: Path) -> None:
    from contracts.keys import load_or_create_key

    nodes = cluster(2, chain=True, price=PRICE, batch_size=1)
    _chain, wallet = funded_client(cluster.directories[0], tmp_path)
    requester, holder = nodes
    wallet.ledger.stake(load_or_create_key(Path(requester.data_dir) / "chain.key"), 10**17)
    with SyncClient(holder.api_url) as at_holder:
        text = at_holder.put(b"data that lives on a node with no stake\n")
    with SyncClient(requester.api_url, wallet=wallet) as client:
        job = client.run(client.deploy(REPO_ROOT / "examples" / "wasm-wordcount"), {"text": text}, pay=MAX_PAY,
                         min_stake=10**17)  # fmt: skip
        assert job.node == requester.peer_id  # not the data's holder: it staked nothing
        explained = {c["peer_id"]: c for c in job.explain()}
        assert explained[holder.peer_id]["verdict"] == "refused" and explained[holder.peer_id]["stake"] == 0
        assert "stakes 0 wei, below" in explained[holder.peer_id]["reason"]
        assert explained[requester.peer_id]["stake"] == 10**17
        assert job.payments[requester.peer_id]["accepted"]
