"""On a real cluster: DELETE /v1/jobs/{id} cancels a running job and the worker's sandbox stops;
a hostile peer that sends ``run`` straight over libp2p, with no offer, gets nothing run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from agents.outcome import OutcomeKind
from agents.runtime.base import RawRun
from node.cluster import http_json
from node.identity import NodeIdentity
from node.scheduler import protocol
from node.scheduler.job import JobSpec
from node.scheduler.jobstore import new_job_id
from node.scheduler.protocol import PROTOCOL, Run, RunAnswer
from storage.cid import CID
from tests.node.scheduler.test_jobs_cluster import metric, post, wait_final
from tests.support import REPO_ROOT, CliRunner, gossip_peer

SLOW = REPO_ROOT / "tests" / "agents" / "fixtures" / "slow-python"
# the runtimes stop the sandbox on RunRequest.cancel from the release where they report an Outcome
RUNTIME_HONOURS_CANCEL = "outcome" in {f.name for f in dataclasses.fields(RawRun)}


def delete(url: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_delete_cancels_the_job_and_the_worker_stops_the_agent(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    requester, worker = cluster(2, regions=["eu", "eu"])
    (tmp_path / "in.txt").write_text("payload")
    data = mycel("put", tmp_path / "in.txt", data_dir_override=Path(worker.data_dir)).stdout.strip()
    agent = mycel("agent", "pack", SLOW, data_dir_override=Path(requester.data_dir)).stdout.strip()
    status, submitted = post(f"{requester.api_url}/v1/jobs", {"agent": agent, "inputs": {"data": data}, "args": ["25"]})
    assert status == 201
    job_id = submitted["job_id"]
    work = Path(worker.data_dir) / "work"
    _wait(lambda: any(work.glob("job-*")), 60, "the worker to stage the job")  # its sandbox starts now

    asked = time.monotonic()
    status, cancelled = delete(f"{requester.api_url}/v1/jobs/{job_id}")
    assert status == 200 and cancelled["state"] == "cancelled"
    assert cancelled == http_json(f"{requester.api_url}/v1/jobs/{job_id}")  # the same JSON as GET
    if RUNTIME_HONOURS_CANCEL:
        _wait(lambda: metric(worker.api_url, 'mycel_jobs_executed_total{status="cancelled"}') == 1, 10, "the stop")
        assert time.monotonic() - asked < 2.0 + 0.5  # + the metric poll's own round trips
    assert wait_final(requester.api_url, job_id)["state"] == "cancelled"

    again = delete(f"{requester.api_url}/v1/jobs/{job_id}")  # a finished job: a no-op, its final state
    assert again == (200, cancelled)
    assert delete(f"{requester.api_url}/v1/jobs/{new_job_id()}")[0] == 404


@pytest.mark.skipif(not RUNTIME_HONOURS_CANCEL, reason="needs the runtimes that stop the sandbox on cancel")
def test_the_slow_agent_stops_within_two_seconds_of_the_cancel(cluster: Any, mycel: CliRunner) -> None:
    (node,) = cluster(1, regions=["eu"])
    agent = mycel("agent", "pack", SLOW, data_dir_override=Path(node.data_dir)).stdout.strip()
    status, submitted = post(f"{node.api_url}/v1/jobs", {"agent": agent, "args": ["25"]})
    assert status == 201
    work = Path(node.data_dir) / "work"
    _wait(lambda: any(work.glob("job-*")), 60, "the job to start")
    asked = time.monotonic()
    assert delete(f"{node.api_url}/v1/jobs/{submitted['job_id']}")[0] == 200
    _wait(lambda: not any(work.glob("job-*")), 10, "the sandbox to stop and its workspace to go")
    assert time.monotonic() - asked < 2.0


def test_a_run_sent_without_an_offer_runs_nothing(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    (honest,) = cluster(1, regions=["eu"])
    agent = mycel("agent", "pack", SLOW, data_dir_override=Path(honest.data_dir)).stdout.strip()
    hostile = NodeIdentity(nacl.signing.SigningKey.generate())

    async def scenario() -> RunAnswer:
        network = gossip_peer(hostile)
        await network.start()
        try:
            await network.connect(honest.multiaddr)
            run = Run(new_job_id(), JobSpec(CID.parse(agent), args=("0",)))
            frames = await network.request(honest.peer_id, PROTOCOL, protocol.encode(run), timeout=30)
            return protocol.decode_answer(frames, RunAnswer)
        finally:
            await network.stop()

    answer = asyncio.run(scenario())
    assert answer.outcome.kind is OutcomeKind.DECLINED and "no offer" in answer.outcome.detail
    assert answer.receipt is None and answer.result is None
    with urllib.request.urlopen(f"{honest.api_url}/metrics", timeout=10) as response:
        executed = [line for line in response.read().decode().splitlines() if line.startswith("mycel_jobs_executed")]
    assert not [line for line in executed if not line.endswith(" 0")]
    assert not any((Path(honest.data_dir) / "work").glob("job-*"))
