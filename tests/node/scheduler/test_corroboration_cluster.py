"""Corroboration on real node processes: a rogue node (tests/node/scheduler/rogue_node.py)
fabricates its results; redundancy across distinct operators and spot re-execution on a
trusted node catch it, keep the evidence, and push the rogue down in placement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents import receipt as receipts
from node.cluster import http_json
from storage.cid import CID
from tests.node.scheduler.hostile import share_operator, with_rogues
from tests.node.scheduler.test_jobs_cluster import post, wait_final
from tests.support import REPO_ROOT, CliRunner

TEXT = b"to be or not to be\n" * 100


def _agent(mycel: CliRunner, node: Any) -> str:
    packed = mycel("agent", "pack", REPO_ROOT / "examples" / "wasm-wordcount", data_dir_override=Path(node.data_dir))
    assert packed.returncode == 0, packed.stderr
    return packed.stdout.strip()


def _blob(node: Any, content: bytes = TEXT) -> str:
    status, uploaded = post(f"{node.api_url}/v1/blobs", content, "application/octet-stream")
    assert status == 201, uploaded
    return str(uploaded["cid"])


def _placement(node: Any, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    candidates = http_json(f"{node.api_url}/v1/jobs/{job['job_id']}/placement")["candidates"]
    return {c["peer_id"]: c for c in candidates}


def _run(node: Any, body: dict[str, Any]) -> dict[str, Any]:
    status, submitted = post(f"{node.api_url}/v1/jobs", body)
    assert status == 201, submitted
    return wait_final(node.api_url, submitted["job_id"])


def _check_evidence(requester: Any, rogue: Any, honest: Any, job: dict[str, Any]) -> None:
    """The requester kept one record blaming the rogue, with both nodes' signed receipts."""
    (record,) = http_json(f"{requester.api_url}/v1/evidence?peer={rogue.peer_id}")["evidence"]
    assert record["job_id"] == job["job_id"] and record["blamed"] == [rogue.peer_id]
    assert record["referee"] == "trusted"
    assert record["evidence_id"] in job["corroboration"]["evidence"]
    assert set(record["receipts"]) == {rogue.peer_id, honest.peer_id}
    for peer, signed in record["receipts"].items():
        checked = receipts.verify(bytes.fromhex(signed))  # each node's own signature over its claim
        assert checked.node == peer and checked.job_id == job["job_id"]
        assert checked.result == CID.parse(record["results"][peer])
    assert record["results"][rogue.peer_id] != record["results"][honest.peer_id]


def test_k2_with_a_rogue_records_evidence_and_drops_it(
    cluster: Any, mycel: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_rogues(monkeypatch, {"node1"})
    requester, rogue = cluster(2, regions=["eu", "eu"])
    agent, data = _agent(mycel, requester), _blob(requester)

    job = _run(requester, {"agent": agent, "inputs": {"text": data}, "redundancy": 2})
    assert job["state"] == "failed", job["transitions"]
    reason = job["transitions"][-1]["reason"]
    assert "only 1 of 2 distinct operators" in reason and rogue.peer_id in reason and "evidence" in reason
    corroboration = job["corroboration"]
    assert corroboration["summary"] == "not corroborated: results disagree" and corroboration["agreed"] == []
    assert set(corroboration["disagreed"]) == {rogue.peer_id}
    _check_evidence(requester, rogue, requester, job)

    # the next job: the rogue's score carries the recorded mismatch, and it says why
    again = _run(requester, {"agent": agent, "inputs": {"text": data}})
    assert again["state"] == "done" and again["corroboration"]["summary"] == "single executor, unverified"
    placement = _placement(requester, again)
    assert placement[rogue.peer_id]["mismatches"] == 1 and placement[requester.peer_id]["mismatches"] == 0
    assert placement[rogue.peer_id]["score"] <= -3500 < placement[requester.peer_id]["score"]
    assert placement[rogue.peer_id]["verdict"] == "standby" and list(again["results"]) == [requester.peer_id]
    assert "1 recorded mismatch" in placement[rogue.peer_id]["reason"]
    (liar,) = http_json(f"{requester.api_url}/v1/reputation?peer={rogue.peer_id}")["peers"]
    assert liar["counts"]["disagreed"] == 1 and liar["penalty_seconds"] >= 3500  # from the verified evidence
    shown = mycel("node", "reputation", "--api", requester.api_url)
    assert shown.returncode == 0 and rogue.peer_id in shown.stdout and "1 disagreed" in shown.stdout, shown.stderr
    explained = mycel("job", "explain", again["job_id"], "--api", requester.api_url)
    assert explained.returncode == 0 and "1 recorded mismatch" in explained.stdout


def test_two_peer_ids_of_one_operator_do_not_make_k2(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    operator = share_operator(tmp_path / "cluster0", ["node0", "node1"])  # the fixture's first cluster dir
    nodes = cluster(2, regions=["eu", "eu"])
    peers = http_json(f"{nodes[0].api_url}/v1/peers")["peers"]
    assert [p["operator"] for p in peers] == [operator]  # node1's delegation arrived and verified
    agent, data = _agent(mycel, nodes[0]), _blob(nodes[0])

    job = _run(nodes[0], {"agent": agent, "inputs": {"text": data}, "redundancy": 2})
    assert job["state"] == "failed", job["transitions"]
    assert "only 1 of 2 distinct operators could run it" in job["transitions"][-1]["reason"]
    assert len(job["results"]) == 1  # the second node of the same operator was never dispatched
    placement = _placement(nodes[0], job)
    assert {c["operator"] for c in placement.values()} == {operator}
    assert any("same operator as" in c["reason"] for c in placement.values())


def test_spot_check_on_a_trusted_node_catches_a_fabrication(
    cluster: Any, mycel: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_rogues(monkeypatch, {"node1"})
    requester, rogue, trusted = cluster(3, regions=["home", "eu", "eu"])
    agent, data = _agent(mycel, requester), _blob(rogue)  # the rogue holds the data: it ranks first in eu

    body = {"agent": agent, "inputs": {"text": data}, "regions": ["eu"], "spot_check": 1.0,
            "trusted": [trusted.peer_id]}  # fmt: skip
    job = _run(requester, body)
    assert job["state"] == "failed", job["transitions"]
    assert any(t["reason"] == f"dispatched to {rogue.peer_id}" for t in job["transitions"])
    reason = job["transitions"][-1]["reason"]
    assert f"spot check by trusted node {trusted.peer_id} disagrees" in reason
    spot = job["corroboration"]["spot_check"]
    assert spot["by"] == trusted.peer_id and spot["outcome"] == "disagreed" and spot["probability"] == 1.0
    _check_evidence(requester, rogue, trusted, job)
