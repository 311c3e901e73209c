"""Queueing, in process: the executor's bounded queue, typed busy declines, the requester's wait and timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from node.scheduler import protocol
from node.scheduler.job import JobError, JobSpec, JobState, queue_timeout_of
from node.scheduler.jobstore import new_job_id
from node.scheduler.protocol import Decline, Offer, OfferAnswer, ProtocolError
from tests.node.apinode import api_node
from tests.node.scheduler.harness import build

__all__ = ["api_node"]  # the fixture, used by name


def _answer(data: bytes) -> OfferAnswer:
    return protocol.decode_answer([data], OfferAnswer)


async def test_executor_queues_past_its_cores_then_declines_busy(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    try:
        executing = cluster.executors[0]  # 2 cores
        executing.execution.queue_slots = 1
        spec = JobSpec(cluster.agent, args=("0",))
        answers = [
            _answer((await executing.execution.handle("12D3KooWPeer", protocol.encode(Offer(new_job_id(), spec))))[0])
            for _ in range(4)
        ]
        assert [a.accepted for a in answers] == [True, True, True, False]
        assert [a.ahead for a in answers] == [0, 0, 1, 2]  # runs that must end before it gets a core
        assert answers[3].decline is Decline.BUSY and answers[3].busy
        assert answers[3].reason.startswith("busy, 2 ahead")
    finally:
        cluster.close()


def test_offer_answer_decline_is_typed_and_checked() -> None:
    old = {"op": "offer_answer", "accepted": False, "reason": "this node is full"}  # an executor before queues
    assert OfferAnswer.from_record(old).decline is Decline.REFUSED
    for bad in ({"decline": "sleepy"}, {"ahead": -1}, {"ahead": True}, {"ahead": 1 << 40}):
        with pytest.raises(ProtocolError):
            OfferAnswer.from_record({**old, **bad})
    with pytest.raises(ProtocolError):  # an accepted offer is not declined
        OfferAnswer.from_record({**old, "accepted": True, "decline": "busy"})
    busy = OfferAnswer(False, "busy, 3 ahead", Decline.BUSY, 3)
    assert _answer(protocol.encode(busy)) == busy


async def test_jobs_past_capacity_wait_queued_then_run(tmp_path: Path) -> None:
    cluster = build(tmp_path)  # one executor: 2 cores, no queue of its own
    try:
        cluster.executors[0].execution.on_change = cluster.requester.wake  # its re-announcement, in process
        jobs = [cluster.requester.submit(JobSpec(cluster.agent, args=("0.3",))) for _ in range(4)]
        finals = await asyncio.gather(*(cluster.final(job.job_id) for job in jobs))
        assert [job.state for job in finals] == [JobState.DONE] * 4, [j.transitions[-1].reason for j in finals]
        waited = [
            t.reason for job in finals for t in job.transitions[1:] if t.state is JobState.QUEUED
        ]  # the first transition is "submitted"
        assert len(waited) >= 2, waited
        assert all(r.startswith("waiting for capacity, place ") and "is full" in r for r in waited), waited
        assert cluster.executors[0].runtime.runs == 4
    finally:
        cluster.close()


async def test_a_queued_job_fails_after_its_queue_timeout(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    try:
        long = [cluster.requester.submit(JobSpec(cluster.agent, args=("30",))) for _ in range(2)]
        while cluster.executors[0].execution.running < 2:  # both cores taken
            await asyncio.sleep(0.01)
        job = cluster.requester.submit(JobSpec(cluster.agent, args=("0",)), queue_timeout=0.3)
        final = await cluster.final(job.job_id, timeout=10)
        assert final.state is JobState.FAILED
        assert final.transitions[-1].reason.startswith("no node had room within the queue timeout of 0.3 s")
        assert any(t.state is JobState.QUEUED and "is full" in t.reason for t in final.transitions[1:])
        for other in long:
            await cluster.requester.cancel(other.job_id)
    finally:
        await cluster.requester.stop()
        await cluster.executors[0].execution.stop()
        cluster.close()


def test_queue_timeout_is_range_checked() -> None:
    assert queue_timeout_of(5) == 5.0
    for bad in (0, -1, True, "10", 1e9):
        with pytest.raises(JobError):
            queue_timeout_of(bad)


async def test_the_api_takes_queue_timeout_and_refuses_a_bad_one(api_node: Any) -> None:
    client, _node, cluster = api_node
    body = {"agent": str(cluster.agent), "args": ["0"]}
    for bad in (0, -5, "soon", True, 1e9):
        response = await client.post("/v1/jobs", json={**body, "queue_timeout": bad})
        assert response.status == 400 and (await response.json())["error"] == "bad_job", bad
    response = await client.post("/v1/jobs", json={**body, "queue_timeout": 30})
    assert response.status == 201
    job = cluster.jobs.get((await response.json())["job_id"])
    assert job is not None and job.queue_timeout == 30.0
