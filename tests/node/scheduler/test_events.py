"""The job event stream: history then live events, nothing lost or doubled, bounded, cleaned up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from node.api import jobs as job_api
from node.api.app import build_app
from node.metrics import Metrics
from node.scheduler.dispatcher import JobService
from node.scheduler.events import JobEvents
from node.scheduler.job import JobRecord, JobSpec, JobState
from node.scheduler.jobstore import JobStore, new_job_id
from storage.cid import CID

AGENT = CID.for_block(b"agent", 0x71)
LIFE = [JobState.QUEUED, JobState.PLACING, JobState.RUNNING, JobState.VERIFYING, JobState.DONE]


class _Config:
    api_host_port = ("127.0.0.1", 0)

    def get(self, section: str, key: str) -> Any:
        return ""


class HookedStore:
    """The job store, with a hook that runs right after the next read (the API's snapshot)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.after_get: Callable[[], None] | None = None

    def get(self, job_id: str) -> JobRecord | None:
        record = self.store.get(job_id)
        hook, self.after_get = self.after_get, None
        if hook is not None:
            hook()
        return record

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class Node:
    def __init__(self, client: TestClient[Any, Any], jobs: HookedStore, service: JobService) -> None:
        self.client, self.jobs, self.service = client, jobs, service

    def new_job(self, *states: JobState) -> JobRecord:
        job = JobRecord(new_job_id(), JobSpec(agent=AGENT))
        self.move(job, *states)
        return job

    def move(self, job: JobRecord, *states: JobState) -> None:
        for state in states:
            self.service._move(job, state, f"to {state.value}")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    jobs = HookedStore(JobStore(tmp_path / "jobs"))
    none = cast(Any, None)
    network = cast(Any, SimpleNamespace(ping=None))  # events need no network: nothing is placed here
    exchange = cast(Any, SimpleNamespace(bandwidth={}))
    service = JobService(cast(Any, jobs), network, exchange, none, none, none)
    fake = SimpleNamespace(config=_Config(), metrics=Metrics(), jobs=jobs, job_service=service)
    async with TestClient(TestServer(build_app(cast(Any, fake)), host="127.0.0.1")) as client:
        yield Node(client, jobs, service)
    jobs.store.close()


async def read_events(response: ClientResponse, count: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Events off an SSE stream: ``count`` of them, or all until the server ends it."""
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    while count is None or len(events) < count:
        line = await response.content.readline()
        if not line:
            break
        if line.startswith(b"event: "):
            kind = line[7:].decode().strip()
        elif line.startswith(b"data: "):
            events.append((kind, json.loads(line[6:])))
    return events


def states(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [data["state"] for kind, data in events if kind == "state"]


async def test_history_then_live_events_each_once(node: Node) -> None:
    job = node.new_job(JobState.QUEUED, JobState.PLACING)
    async with node.client.get(f"/v1/jobs/{job.job_id}/events") as response:
        assert states(await read_events(response, 2)) == ["queued", "placing"]
        node.move(job, JobState.RUNNING, JobState.VERIFYING, JobState.DONE)
        assert states(await read_events(response)) == ["running", "verifying", "done"]
    assert node.service.events.subscribers(job.job_id) == 0


async def test_a_job_that_ends_between_snapshot_and_subscribe_keeps_its_final_states(node: Node) -> None:
    job = node.new_job(JobState.QUEUED, JobState.PLACING)
    # the API reads the job (its snapshot), and the job ends before the stream subscribes
    node.jobs.after_get = lambda: node.move(job, JobState.RUNNING, JobState.VERIFYING, JobState.DONE)
    async with node.client.get(f"/v1/jobs/{job.job_id}/events") as response:
        assert states(await asyncio.wait_for(read_events(response), 10)) == [s.value for s in LIFE]


async def test_a_finished_job_streams_its_history_and_ends(node: Node) -> None:
    job = node.new_job(*LIFE)
    async with node.client.get(f"/v1/jobs/{job.job_id}/events") as response:
        assert states(await asyncio.wait_for(read_events(response), 10)) == [s.value for s in LIFE]
    assert node.service.events.subscribers(job.job_id) == 0


async def test_a_disconnected_client_is_unsubscribed(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_api, "KEEPALIVE", 0.05)  # the stream finds a gone client on its next write
    job = node.new_job(JobState.QUEUED)
    response = await node.client.get(f"/v1/jobs/{job.job_id}/events")
    await read_events(response, 1)
    assert node.service.events.subscribers(job.job_id) == 1
    response.close()
    async with asyncio.timeout(10):
        while node.service.events.subscribers(job.job_id):
            await asyncio.sleep(0.01)  # polls a condition: the server notices the closed socket


def test_a_slow_subscriber_is_dropped_with_a_marker_not_silently() -> None:
    events = JobEvents(limit=4)
    job = JobRecord(new_job_id(), JobSpec(agent=AGENT))
    job.move(JobState.QUEUED, "submitted")
    events.publish(job)
    subscription = events.subscribe(job)
    assert [e.data["state"] for e in subscription.history] == ["queued"]
    for _ in range(3):  # six events; the subscriber reads none of them
        job.move(JobState.PLACING, "placing")
        events.publish(job)
        job.move(JobState.QUEUED, "back")
        events.publish(job)
    assert events.subscribers(job.job_id) == 0

    async def drain() -> list[str]:
        got = []
        while (event := await subscription.next()) is not None:
            got.append(event.kind)
        return got

    assert asyncio.run(drain()) == ["state"] * 4 + ["dropped"]


def test_finished_histories_are_bounded() -> None:
    events = JobEvents(finished_kept=2)
    jobs = []
    for _ in range(5):
        job = JobRecord(new_job_id(), JobSpec(agent=AGENT))
        job.move(JobState.QUEUED, "submitted")
        job.move(JobState.CANCELLED, "cancelled")
        events.publish(job)
        jobs.append(job)
    assert len(events._history) == 2
    assert [e.data["state"] for e in events.subscribe(jobs[0]).history] == ["queued", "cancelled"]  # from the store
