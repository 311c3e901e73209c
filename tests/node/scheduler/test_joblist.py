"""The job store lists jobs newest first, filtered and paged, from its index alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.scheduler.job import JobRecord, JobSpec, JobState, Transition
from node.scheduler.jobstore import MAX_PAGE, JobStore, new_job_id
from storage.cid import CID
from storage.records import RecordTables

AGENTS = [CID.parse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
          CID.parse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")]  # fmt: skip


def make(created: float, agent: int = 0, final: bool = False) -> JobRecord:
    job = JobRecord(new_job_id(), JobSpec(agent=AGENTS[agent]))
    job.transitions.append(Transition(JobState.QUEUED, created, "submitted"))
    if final:
        job.transitions.append(Transition(JobState.CANCELLED, created + 1, "cancelled by the client"))
    return job


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs")


def test_newest_first_with_filters_and_cursor_paging(store: JobStore) -> None:
    jobs = [make(1000.0 + i, agent=i % 2, final=i % 3 == 0) for i in range(10)]
    for job in reversed(jobs):  # saved out of order: the listing follows creation time, not writes
        store.save(job)
    newest = [job.job_id for job in reversed(jobs)]

    first, cursor = store.page(limit=4)
    assert [s["job_id"] for s in first] == newest[:4] and cursor is not None
    second, cursor = store.page(limit=4, cursor=cursor)
    third, end = store.page(limit=4, cursor=cursor)
    assert [s["job_id"] for s in second + third] == newest[4:] and end is None

    cancelled, _ = store.page(state="cancelled")
    assert [s["job_id"] for s in cancelled] == [j.job_id for j in reversed(jobs) if j.state is JobState.CANCELLED]
    assert cancelled[0]["reason"] == "cancelled by the client" and cancelled[0]["updated"] == 1010.0
    mine, _ = store.page(agent=str(AGENTS[1]), state="queued")
    assert [s["job_id"] for s in mine] == [j.job_id for j in reversed(jobs) if j.spec.agent == AGENTS[1]
                                           and j.state is JobState.QUEUED]  # fmt: skip
    after = store.cursor_after(jobs[5].job_id)
    assert [s["job_id"] for s in store.page(cursor=after)[0]] == newest[5:]  # jobs[5] is newest[4]
    assert store.cursor_after("unknown") is None


def test_a_new_state_replaces_the_listed_one(store: JobStore) -> None:
    job = make(5.0)
    store.save(job)
    job.move(JobState.PLACING, "looking")
    store.save(job)
    listed, _ = store.page()
    assert [(s["job_id"], s["state"]) for s in listed] == [(job.job_id, "placing")]


def test_a_job_saved_before_its_first_transition_is_listed_once(store: JobStore) -> None:
    job = JobRecord(new_job_id(), JobSpec(agent=AGENTS[0]))
    store.save(job)
    job.move(JobState.QUEUED, "submitted")
    store.save(job)
    assert [(s["job_id"], s["state"]) for s in store.page()[0]] == [(job.job_id, "queued")]


def test_the_limit_is_bounded(store: JobStore) -> None:
    for i in range(MAX_PAGE + 3):
        store.save(make(float(i)))
    page, cursor = store.page(limit=10**6)
    assert len(page) == MAX_PAGE and cursor is not None
    assert len(store.page(limit=0)[0]) == 1


def test_a_store_written_before_the_index_is_indexed_on_open(tmp_path: Path) -> None:
    old = RecordTables(tmp_path / "jobs", ("jobs", "answers"))
    jobs = [make(1.0), make(2.0)]
    for job in jobs:
        old.put("jobs", job.job_id, job.to_record())
    old.close()
    store = JobStore(tmp_path / "jobs")
    assert [s["job_id"] for s in store.page()[0]] == [jobs[1].job_id, jobs[0].job_id]
    store.close()


def test_a_stale_index_is_rebuilt_from_the_jobs(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    job = make(3.0)
    store.save(job)
    store.close()
    tables = RecordTables(tmp_path / "jobs", ("jobs", "answers", "index"))
    tables.put("index", "00000000000000000001.stale", {"job_id": "stale", "state": "queued", "agent": "x"})
    tables.close()
    reopened = JobStore(tmp_path / "jobs")
    assert [s["job_id"] for s in reopened.page()[0]] == [job.job_id]
    reopened.close()
