"""``mycel ledger verify`` and ``Job.verify_settlement`` on a paid job that two nodes ran and
were both paid for: a valid job verifies (exit 0), each settlement against its own receipt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdk import SyncClient
from tests.node.settlement.test_paid_jobs import funded_client, wait_claims
from tests.support import REPO_ROOT, CliRunner


def test_a_valid_redundant_paid_job_verifies(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    requester, holder = cluster(2, chain=True, price=10**9, batch_size=1, batch_interval=0.5)
    _, wallet = funded_client(cluster.directories[0], tmp_path)
    with SyncClient(requester.api_url, wallet=wallet) as client:
        text = client.put(b"one two two three three three\n")
        agent = client.deploy(REPO_ROOT / "examples" / "wasm-wordcount")
        job = client.run(agent, {"text": text}, redundancy=2, pay=10**15)
        assert sorted(job.info["receipts"]) == sorted([requester.peer_id, holder.peer_id])
        wait_claims(requester.api_url, 1)
        wait_claims(holder.api_url, 1)
        checks = job.verify_settlement()
    assert sorted(c.node_peer_id for c in checks) == sorted([requester.peer_id, holder.peer_id])
    assert all(c.receipt_checked for c in checks)

    verified = mycel("ledger", "verify", job.job_id, "--api", requester.api_url, "--cluster", cluster.directories[0])
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count("settled: ") == 2
