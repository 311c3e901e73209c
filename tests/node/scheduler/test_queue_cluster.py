"""More jobs than slots on real nodes: the surplus waits ``queued`` and runs as slots free, none fails.

Three node processes with one core and no executor queue each (3 slots in all), 12 jobs of
~1 s submitted at once to one of them. Before queueing, the jobs beyond the 3 slots failed
with "no node can run this job: ... is full"; now each waits in ``queued``, with the reason
in its transitions, and is placed when a node announces a free slot.
"""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from node.cluster import http_json
from tests.support import CliRunner

JOBS = 12


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _sleepy_agent(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.py").write_text(
        "import os, sys, time\n"
        "time.sleep(float(sys.argv[1]))\n"
        "open(os.path.join(os.environ['MYCEL_OUT'], 'done.txt'), 'w').write(sys.argv[2])\n"
    )
    (directory / "mycel-agent.toml").write_text(
        'name = "sleepy"\nversion = "0.0.1"\nruntime = "python"\nentrypoint = "main.py"\n'
        "[limits]\ncpu_seconds = 10\nmemory_mib = 256\nwall_seconds = 30\n"
    )
    return directory


def test_jobs_beyond_capacity_wait_queued_and_all_finish(
    cluster: Any, mycel: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYCEL_CAPACITY_CPU_CORES", "1")
    monkeypatch.setenv("MYCEL_CAPACITY_QUEUE_JOBS", "0")
    nodes = cluster(3)
    requester = nodes[0]
    packed = mycel("agent", "pack", _sleepy_agent(tmp_path / "agent"), data_dir_override=Path(requester.data_dir))
    assert packed.returncode == 0, packed.stderr
    agent = packed.stdout.strip()

    def submit(i: int) -> str:
        body = {"agent": agent, "args": ["1.0", str(i)], "queue_timeout": 120}
        return str(_post(f"{requester.api_url}/v1/jobs", body)["job_id"])

    with ThreadPoolExecutor(JOBS) as pool:  # all at once
        submitted = list(pool.map(submit, range(JOBS)))
    pending, jobs = set(submitted), {}
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            job = http_json(f"{requester.api_url}/v1/jobs/{job_id}")
            if job["state"] in ("done", "failed", "cancelled"):
                jobs[job_id] = job
                pending.discard(job_id)
        time.sleep(0.1)  # polls a condition (every job final), bounded by the deadline
    assert not pending, f"{len(pending)} jobs never finished"
    failed = {job_id: job["transitions"][-1]["reason"] for job_id, job in jobs.items() if job["state"] != "done"}
    assert not failed, failed
    waits = {
        job_id: [t["reason"] for t in job["transitions"] if t["state"] == "queued" and "capacity" in t["reason"]]
        for job_id, job in jobs.items()
    }
    queued = [reason for reasons in waits.values() for reason in reasons]
    waited = [job_id for job_id, reasons in waits.items() if reasons]
    # 3 slots, 12 jobs of 1 s: most must have waited (a few may find a slot freed as they arrive)
    assert len(waited) >= JOBS // 2, f"only {len(waited)} jobs waited in queued: {queued}"
    assert all(r.startswith("waiting for capacity, place ") and ("is full" in r or "busy" in r) for r in queued)
    ran_on = {peer for job in jobs.values() for peer in job["results"]}
    assert ran_on == {node.peer_id for node in nodes}  # the queue drained onto every node, not one
