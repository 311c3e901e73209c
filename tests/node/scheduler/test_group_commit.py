"""Job transitions are group-committed off the event loop, and told only once written."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from node.scheduler.job import JobSpec, JobState
from storage.cid import CID
from tests.node.scheduler.harness import build


def _on_disk(cluster_jobs: object, job_id: str) -> str | None:
    """The job's state as LMDB holds it (not the store's overlay of jobs being written)."""
    record = cluster_jobs._tables.get("jobs", job_id)  # type: ignore[attr-defined]
    return None if record is None else str(record["transitions"][-1]["state"])


async def test_many_jobs_changes_share_commits_and_none_is_made_on_the_loop(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=2)
    env = cluster.jobs._tables._lmdb  # type: ignore[attr-defined]
    loop_thread = threading.get_ident()
    on_loop: list[int] = []
    write = env.write_growing

    def watched(*args: object, **kwargs: object) -> object:
        if threading.get_ident() == loop_thread:
            on_loop.append(1)
        return write(*args, **kwargs)

    env.write_growing = watched
    try:
        before = env.commits
        jobs = [cluster.requester.submit(JobSpec(cluster.agent, args=("0",))) for _ in range(24)]
        assert env.commits == before  # submit() stages; the write is the writer task's
        await cluster.requester.persisted()
        # 24 submissions in one turn of the loop share one commit (the jobs' first moves may
        # have taken the next one by the time this wakes): not 24
        assert env.commits - before <= 3, env.commits - before
        assert all(_on_disk(cluster.jobs, job.job_id) is not None for job in jobs)
        finals = await asyncio.gather(*(cluster.final(job.job_id) for job in jobs))
        assert [job.state for job in finals] == [JobState.DONE] * 24
        await cluster.requester.persisted()
        transitions = sum(len(job.transitions) for job in finals)
        commits = env.commits - before
        assert commits < transitions, (commits, transitions)  # before: one synced commit per change
        assert on_loop == []  # every job write ran in a worker thread
        assert all(_on_disk(cluster.jobs, job.job_id) == "done" for job in jobs)
    finally:
        await cluster.requester.stop()
        cluster.close()


async def test_a_watcher_hears_of_a_change_only_once_it_is_on_disk(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    try:
        job = cluster.requester.submit(JobSpec(cluster.agent, args=("0",)))
        subscription = cluster.requester.events.subscribe(job)
        told = len(subscription.history)
        behind: list[tuple[int, int]] = []
        while (event := await subscription.next()) is not None:
            told += event.kind == "state"
            record = cluster.jobs._tables.get("jobs", job.job_id)  # type: ignore[attr-defined]
            if len(record["transitions"]) < told:  # the watcher heard of a change not on disk yet
                behind.append((told, len(record["transitions"])))
        assert behind == [] and _on_disk(cluster.jobs, job.job_id) == "done"
        assert (await cluster.requester.finished(job.job_id)).state is JobState.DONE
    finally:
        await cluster.requester.stop()
        cluster.close()


async def test_stop_writes_what_the_jobs_did_last(tmp_path: Path) -> None:
    cluster = build(tmp_path)
    try:
        job = cluster.requester.submit(JobSpec(cluster.agent, args=("30",)))
        await cluster.requester.cancel(job.job_id)  # staged "cancelled", maybe not written yet
        await cluster.requester.stop()
        assert _on_disk(cluster.jobs, job.job_id) == "cancelled"
    finally:
        cluster.close()


async def test_an_attempts_outcome_is_written_with_the_jobs_changes_not_on_its_own(tmp_path: Path) -> None:
    """The reputation event an attempt earns (``completed``) rides the group commit of the job's
    next state: no synced commit of its own on the way from a result to ``done``."""
    cluster = build(tmp_path, executors=1)
    own_commits: list[object] = []
    cluster.jobs.record_outcomes = own_commits.append  # type: ignore[method-assign]
    try:
        job = cluster.requester.submit(JobSpec(cluster.agent, args=("0",)))
        final = await cluster.final(job.job_id)
        assert final.state is JobState.DONE, final.transitions
        (executor,) = cluster.executors
        assert list(final.results) == [executor.peer_id]
        assert own_commits == []
        await cluster.requester.persisted()
        record = cluster.jobs._tables.get("reputation", executor.peer_id)  # type: ignore[attr-defined]
        assert [event for event, _, job_id in record["events"] if job_id == job.job_id] == ["completed"]
    finally:
        await cluster.requester.stop()
        cluster.close()


async def test_a_results_receipt_is_stored_off_the_event_loop(tmp_path: Path) -> None:
    """The receipt a requester keeps for each result is a synced block write: a worker thread's."""
    cluster = build(tmp_path, executors=1)
    store = cluster.requester.exchange.store
    loop_thread = threading.get_ident()
    threads: list[bool] = []
    put = store.put

    def watched(cid: object, data: bytes) -> bool:
        threads.append(threading.get_ident() == loop_thread)
        return put(cid, data)  # type: ignore[arg-type]

    store.put = watched
    try:
        final = await cluster.final(cluster.requester.submit(JobSpec(cluster.agent, args=("0",))).job_id)
        assert final.state is JobState.DONE, final.transitions
        (receipt,) = final.receipts.values()
        assert threads == [False]
        assert store.has(CID.parse(receipt))
    finally:
        await cluster.requester.stop()
        cluster.close()
