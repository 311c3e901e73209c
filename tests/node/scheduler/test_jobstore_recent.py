"""A job the group commit just wrote is read back as the live record, not decoded from LMDB:
a client that follows each job it submits (its event stream, then its record) cost the
requester's event loop a read and decode of the job per request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.scheduler.job import JobRecord, JobSpec
from node.scheduler.jobstore import RECENT_KEPT, JobStore, new_job_id
from storage.cid import CID

AGENT = CID.parse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")


def _written(store: JobStore, job: JobRecord) -> None:
    """What JobService does for one job: stage it, commit the stage, say it is written."""
    store.stage(job)
    batch = store.take_staged()
    store.write_prepared([prepared for _, (prepared, _) in batch])
    store.written([job for job, _ in batch])


def test_a_job_just_written_is_read_back_without_a_table_read(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    reads: list[Any] = []
    table_get = store._tables.get
    store._tables.get = lambda *args: reads.append(args) or table_get(*args)  # type: ignore[method-assign]
    try:
        first = JobRecord(new_job_id(), JobSpec(agent=AGENT))
        _written(store, first)
        assert store.get(first.job_id) is first and reads == []

        for _ in range(RECENT_KEPT):  # the oldest leaves memory, and is read from disk as before
            _written(store, JobRecord(new_job_id(), JobSpec(agent=AGENT)))
        again = store.get(first.job_id)
        assert again is not first and again is not None and again.to_record() == first.to_record()
        assert len(reads) == 1
    finally:
        store.close()
