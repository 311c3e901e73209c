"""``mycel chain`` and ``mycel ledger`` against a real cluster and a real anvil."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from node.cluster import http_json, process_alive, read_cluster_chain
from tests.node.settlement.test_paid_jobs import wait_claims
from tests.support import REPO_ROOT, CliRunner


def test_ledger_commands_pay_for_a_job_and_verify_it(
    cluster: Any, mycel: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (node,) = cluster(1, chain=True, price=10**9, batch_size=1)
    where = ["--cluster", str(cluster.directories[0])]
    chain = read_cluster_chain(cluster.directories[0])
    assert chain is not None
    monkeypatch.setenv("MYCEL_CHAIN_RPC_URL", chain.rpc_url)
    monkeypatch.setenv("MYCEL_CHAIN_CONTRACT", chain.contract)
    deadline = time.monotonic() + 20
    while "ok    registration" not in (doctor := mycel("node", "doctor", "--data-dir", node.data_dir)).stdout:
        assert time.monotonic() < deadline, doctor.stdout  # the node registers itself shortly after start
        time.sleep(0.5)
    assert "ok    ledger" in doctor.stdout and "ok    chain key" in doctor.stdout
    key = ["--key", str(tmp_path / "client.key")]
    assert mycel("chain", "fund", *where, *key).returncode == 0
    deposit = mycel("ledger", "deposit", "0.01eth", *where, *key)
    assert deposit.returncode == 0 and "escrow 0.01 ETH" in deposit.stdout, deposit.stderr
    balance = json.loads(mycel("ledger", "balance", "--json", *where, *key).stdout)
    assert balance["escrow"] == 10**16

    agent = mycel("agent", "pack", REPO_ROOT / "examples" / "wasm-wordcount", data_dir_override=Path(node.data_dir))
    text = mycel("put", REPO_ROOT / "README.md", data_dir_override=Path(node.data_dir))
    assert agent.returncode == 0 and text.returncode == 0, agent.stderr + text.stderr
    api = ["--api", node.api_url]
    run = mycel("job", "run", agent.stdout.strip(), "--input", f"text={text.stdout.strip()}", "--pay", "1gwei",
                "--json", *api, *where, *key)  # fmt: skip
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)
    assert job["paid"] and job["state"] == "done"
    wait_claims(node.api_url, 1)

    claims = json.loads(mycel("ledger", "claims", "--json", *api).stdout)["claims"]
    assert [(c["job_id"], c["state"]) for c in claims] == [(job["job_id"], "settled")]
    verified = mycel("ledger", "verify", job["job_id"], *api, *where)
    assert verified.returncode == 0 and f"to {node.peer_id}" in verified.stdout, verified.stderr
    after = json.loads(mycel("ledger", "balance", "--json", *where, *key).stdout)
    assert 0 < balance["escrow"] - after["escrow"] <= 10**9  # paid, at most the authorised gwei

    # a job nobody paid for: no settlement, exit code 3
    unpaid = mycel("ledger", "verify", "0" * 32, *api, *where)
    assert unpaid.returncode != 0 and unpaid.stderr.startswith("error:")
    # withdrawal waits out every outstanding authorisation: one line, exit 1
    assert mycel("ledger", "withdraw", "1gwei", *where, *key).returncode == 0
    locked = mycel("ledger", "withdraw", *where, *key)
    assert locked.returncode == 1 and locked.stderr.strip() == "error: the ledger refused it: withdrawal still locked"
    assert http_json(f"{node.api_url}/v1/ledger")["claims"]["settled"] == 1


def test_chain_dev_runs_until_stopped(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli.main", "chain", "dev", "--dir", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "chain.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        info = json.loads((tmp_path / "chain.json").read_text())
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(info["rpc_url"]))
        assert w3.eth.chain_id == 31337 and w3.eth.get_code(info["contract"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert not process_alive(info["pid"])
