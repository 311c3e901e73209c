"""Nothing is lost: the chosen node dies mid-run, or the requester restarts mid-job."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from node.cluster import http_json, start_node_process, stop_process, wait_answering, wait_for_peers
from tests.node.scheduler.test_jobs_cluster import metric, post, wait_final
from tests.support import REPO_ROOT, CliRunner

SLOW = REPO_ROOT / "tests" / "agents" / "fixtures" / "slow-python"


def _wait_running(api_url: str, job_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = http_json(f"{api_url}/v1/jobs/{job_id}")
        if job["state"] == "running":
            return str(job["transitions"][-1]["reason"]).removeprefix("dispatched to ")
        time.sleep(0.05)
    raise AssertionError("job never started running")


def _wait_in_sandbox(api_url: str) -> None:
    """Until the node reports an agent in its sandbox (its inputs and the agent fetched)."""
    deadline = time.monotonic() + 60
    while metric(api_url, "mycel_jobs_in_sandbox") < 1:
        assert time.monotonic() < deadline, "the agent never started on the chosen node"
        time.sleep(0.05)


def _put_everywhere(nodes: list[Any], mycel: CliRunner, path: Path) -> str:
    cids = {mycel("put", path, data_dir_override=Path(n.data_dir)).stdout.strip() for n in nodes}
    assert len(cids) == 1
    return cids.pop()


def test_failover_when_the_chosen_node_dies_mid_run(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    nodes = cluster(3, regions=["eu", "eu", "eu"])
    requester, holders = nodes[0], nodes[1:]
    (tmp_path / "in.txt").write_text("payload")
    data = _put_everywhere(holders, mycel, tmp_path / "in.txt")
    agent = mycel("agent", "pack", SLOW, data_dir_override=Path(requester.data_dir)).stdout.strip()
    status, submitted = post(f"{requester.api_url}/v1/jobs", {"agent": agent, "inputs": {"data": data}, "args": ["4"]})
    assert status == 201
    chosen = _wait_running(requester.api_url, submitted["job_id"])
    victim = next(n for n in holders if n.peer_id == chosen)
    _wait_in_sandbox(victim.api_url)  # the agent is running there now
    stop_process(victim.pid, timeout=0)  # SIGTERM then at once SIGKILL: dies mid-run
    job = wait_final(requester.api_url, submitted["job_id"])
    assert job["state"] == "done", job["transitions"]
    survivor = next(n for n in holders if n is not victim)
    assert list(job["results"]) == [survivor.peer_id]
    reasons = " | ".join(t["reason"] for t in job["transitions"])
    assert "failing over" in reasons and victim.peer_id in reasons
    _check_flaky_ranked_below_steady(requester, victim, survivor, agent, data)


def _check_flaky_ranked_below_steady(requester: Any, flaky: Any, steady: Any, agent: str, data: str) -> None:
    """The requester recorded the death: the flaky node ranks below the steady one (both hold the
    data, so nothing else tells them apart), and the record survives a restart of the requester."""
    record = {p["peer_id"]: p for p in http_json(f"{requester.api_url}/v1/reputation")["peers"]}
    assert record[flaky.peer_id]["counts"]["died"] == 1 and record[flaky.peer_id]["penalty_seconds"] > 0
    assert record[steady.peer_id]["counts"]["completed"] == 1 and record[steady.peer_id]["penalty_seconds"] == 0
    assert record[steady.peer_id]["rank"] < record[flaky.peer_id]["rank"]
    status, submitted = post(f"{requester.api_url}/v1/jobs", {"agent": agent, "inputs": {"data": data}, "args": ["0"]})
    assert status == 201
    job = wait_final(requester.api_url, submitted["job_id"])
    dispatched = [t["reason"] for t in job["transitions"] if t["reason"].startswith("dispatched to")]
    assert dispatched == [f"dispatched to {steady.peer_id}"], job["transitions"]  # the flaky one is not tried
    placement = {
        c["peer_id"]: c for c in http_json(f"{requester.api_url}/v1/jobs/{job['job_id']}/placement")["candidates"]
    }
    if flaky.peer_id in placement:  # still in the peer table (not yet timed out): ranked below, saying why
        assert placement[flaky.peer_id]["verdict"] == "standby" and "1 died" in placement[flaky.peer_id]["reason"]
    counts = {peer: row["counts"] for peer, row in record.items()}
    counts[steady.peer_id]["completed"] += 1
    stop_process(requester.pid)
    proc = start_node_process(Path(requester.data_dir), requester.listen, requester.api, [steady.multiaddr],
                              requester.region)  # fmt: skip
    try:
        wait_answering(proc, requester.api_url, Path(requester.data_dir) / "node.log")
        wait_for_peers(requester.api_url, 1, timeout=30)
        after = http_json(f"{requester.api_url}/v1/reputation")["peers"]
        assert {row["peer_id"]: row["counts"] for row in after} == counts
        assert [row["peer_id"] for row in after] == [steady.peer_id, flaky.peer_id]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_requester_restart_mid_job_loses_nothing(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    nodes = cluster(2, regions=["eu", "eu"])
    requester, worker = nodes
    (tmp_path / "in.txt").write_text("payload")
    data = _put_everywhere([worker], mycel, tmp_path / "in.txt")
    agent = mycel("agent", "pack", SLOW, data_dir_override=Path(requester.data_dir)).stdout.strip()
    status, submitted = post(f"{requester.api_url}/v1/jobs", {"agent": agent, "inputs": {"data": data}, "args": ["3"]})
    assert status == 201
    assert _wait_running(requester.api_url, submitted["job_id"]) == worker.peer_id
    _wait_in_sandbox(worker.api_url)  # the worker has fetched the agent and is running it
    stop_process(requester.pid)  # the requester goes away mid-job
    proc = start_node_process(
        Path(requester.data_dir), requester.listen, requester.api, [worker.multiaddr], requester.region
    )
    try:
        wait_answering(proc, requester.api_url, Path(requester.data_dir) / "node.log")
        wait_for_peers(requester.api_url, 1, timeout=30)
        job = wait_final(requester.api_url, submitted["job_id"])
        assert job["state"] == "done", job["transitions"]
        assert list(job["results"]) == [worker.peer_id], job["transitions"]
        # re-dispatched with the same job id, the worker answered from its first run: it ran once
        assert metric(worker.api_url, 'mycel_jobs_executed_total{status="ok"}') == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
