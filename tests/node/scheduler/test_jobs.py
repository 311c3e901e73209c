from __future__ import annotations

from pathlib import Path

import pytest

from node.scheduler.job import JobError, JobRecord, JobSpec, JobState
from node.scheduler.jobstore import JobStore, new_job_id
from storage import dagcbor
from storage.cid import CID

AGENT = CID.for_block(b"agent", 0x71)
DATA = CID.for_block(b"data")


def spec(**changes: object) -> JobSpec:
    base: dict[str, object] = {"agent": AGENT, "inputs": {"data": DATA}, "regions": ("eu",), "redundancy": 2}
    base.update(changes)
    return JobSpec(**base)  # type: ignore[arg-type]


def test_spec_round_trips_as_dag_cbor_with_a_stable_cid() -> None:
    original = spec(max_price=5, deadline=1.5, args=("--fast",))
    cid, block = original.encode()
    assert JobSpec.decode(block) == original
    assert spec(max_price=5, deadline=1.5, args=("--fast",)).encode()[0] == cid


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"inputs": {}}, "agent"),
        ({"agent": AGENT, "inputs": {"a/b": DATA}}, "plain names"),
        ({"agent": AGENT, "redundancy": 0}, "redundancy"),
        ({"agent": AGENT, "regions": "eu"}, "regions"),
        ({"agent": AGENT, "max_price": -1}, "max_price"),
        ({"agent": AGENT, "surprise": 1}, "unknown"),
        ({"agent": AGENT, "limits": {"cpu_seconds": 0}}, "limits"),
    ],
)
def test_bad_specs_are_refused(record: dict[str, object], message: str) -> None:
    with pytest.raises(JobError, match=message):
        JobSpec.decode(dagcbor.encode(record))


def test_malformed_cbor_is_refused() -> None:
    with pytest.raises(JobError, match="DAG-CBOR"):
        JobSpec.decode(b"\xff\x00")


def test_lifecycle_records_every_transition_and_refuses_impossible_ones() -> None:
    job = JobRecord(new_job_id(), spec())
    job.move(JobState.QUEUED, "submitted")
    job.move(JobState.PLACING, "looking for nodes")
    job.move(JobState.RUNNING, "accepted by n3")
    job.move(JobState.PLACING, "n3 died mid-run: failing over")
    job.move(JobState.RUNNING, "accepted by n2")
    job.move(JobState.VERIFYING, "2 results")
    job.move(JobState.DONE, "result CIDs agree")
    assert [t.state for t in job.transitions][-1] is JobState.DONE and job.state.final
    assert all(t.reason for t in job.transitions)
    with pytest.raises(JobError, match="cannot go from done to running"):
        job.move(JobState.RUNNING, "again")


def test_jobs_survive_a_restart_and_unfinished_ones_are_found(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    done, pending = JobRecord(new_job_id(), spec()), JobRecord(new_job_id(), spec(redundancy=1))
    for job in (done, pending):
        job.move(JobState.QUEUED, "submitted")
    done.move(JobState.CANCELLED, "cancelled by the client")
    pending.move(JobState.PLACING, "looking")
    pending.placement = [{"peer_id": "n1", "verdict": "chosen", "reason": "holds the data"}]
    store.save(done)
    store.save(pending)
    store.close()
    reopened = JobStore(tmp_path / "jobs")
    assert [job.job_id for job in reopened.unfinished()] == [pending.job_id]
    restored = reopened.get(pending.job_id)
    assert restored is not None and restored.state is JobState.PLACING
    assert restored.placement[0]["reason"] == "holds the data" and restored.spec == pending.spec
    assert reopened.get("unknown") is None
    reopened.close()
