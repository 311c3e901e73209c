"""HTTP helpers for jobs, blobs and metrics on nodes of a planet (plain urllib, as a client would)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from node.cluster import http_json
from tests.node.scheduler.test_jobs_cluster import post as post
from tests.node.scheduler.test_jobs_cluster import wait_final as wait_final


def put_blob(api_url: str, data: bytes) -> str:
    status, answer = post(f"{api_url}/v1/blobs", data, "application/octet-stream")
    assert status == 201, answer
    return str(answer["cid"])


def metric(api_url: str, name: str) -> float:
    """One sample of a Prometheus metric (its full name with labels); 0 when absent."""
    with urllib.request.urlopen(f"{api_url}/metrics", timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def bytes_out(nodes: list[Any]) -> float:
    return sum(metric(n.api_url, "mycel_bytes_out_total") for n in nodes if n.running())


def submit(api_url: str, spec: dict[str, Any]) -> str:
    status, answer = post(f"{api_url}/v1/jobs", spec)
    assert status == 201, answer
    return str(answer["job_id"])


def wait_state(api_url: str, job_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = http_json(f"{api_url}/v1/jobs/{job_id}")
        if job["state"] == state:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {state}: {http_json(f'{api_url}/v1/jobs/{job_id}')}")


def executed(node: Any) -> float:
    """How many runs this node finished for requesters, any outcome."""
    with urllib.request.urlopen(f"{node.api_url}/metrics", timeout=30) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith("mycel_jobs_executed_total{"))
