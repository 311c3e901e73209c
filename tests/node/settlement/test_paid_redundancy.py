"""Paid redundant jobs with a rogue executor: only the nodes that returned the agreed result are paid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.cluster import http_json
from sdk import SyncClient
from tests.node.scheduler.hostile import with_rogues
from tests.node.settlement.test_paid_jobs import MAX_PAY, PRICE, funded_client, wait_claims
from tests.support import REPO_ROOT


def test_a_disagreeing_executor_is_replaced_and_not_paid(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_rogues(monkeypatch, {"node1"})
    requester, rogue, honest = cluster(3, chain=True, price=PRICE, batch_size=2, batch_interval=1.0)
    _, wallet = funded_client(cluster.directories[0], tmp_path)
    content = b"to be or not to be that is the question\n" * 1000
    with SyncClient(rogue.api_url) as at_rogue:
        at_rogue.put(content)  # the requester and the rogue hold the data: they are placed first
    with SyncClient(requester.api_url, wallet=wallet) as client:
        text = client.put(content)
        agent = client.deploy(REPO_ROOT / "examples" / "wasm-wordcount")
        job = client.run(agent, {"text": text}, redundancy=2, pay=MAX_PAY)  # waits, judges, then pays
        corroboration = job.corroboration
        assert corroboration["summary"] == "2 distinct operators agreed of 3 run", job.info["transitions"]
        assert sorted(corroboration["agreed"]) == sorted([requester.peer_id, honest.peer_id])
        assert list(corroboration["disagreed"]) == [rogue.peer_id] and len(corroboration["evidence"]) == 1
        assert sorted(job.payments) == sorted([requester.peer_id, honest.peer_id])  # never the rogue
        assert all(answer["accepted"] for answer in job.payments.values())
        assert rogue.peer_id not in job.info["results"]
        wait_claims(honest.api_url, 1)
        wait_claims(requester.api_url, 1)
        settled = job.verify_settlement()  # each checked against its own node's receipt
        assert sorted(check.node_peer_id for check in settled) == sorted([requester.peer_id, honest.peer_id])
    assert http_json(f"{rogue.api_url}/v1/ledger/claims")["claims"] == []
