"""The SDK on the paths a real node never takes on its own: tampering, odd destinations, live
event streams, a port that is not HTTP. Verification must never cry wolf, nor stay silent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Client, NodeUnreachableError, SyncClient, UsageError, VerificationError
from storage.cid import CID
from tests.sdk.fakenode import FakeNode, fake_node, not_http

JOB = "a" * 32


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with fake_node() as serving:
        yield serving


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.txt").write_text("beta\n")
    return root


def test_get_refuses_a_non_empty_destination_and_leaves_it_alone(node: FakeNode, tmp_path: Path) -> None:
    cid = node.add_directory(_tree(tmp_path / "src"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("the user's own file")
    with SyncClient(node.url) as client, pytest.raises(UsageError, match="not empty"):
        client.get(cid, mine)
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt"]  # nothing merged in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "src"]  # no scratch left beside it


def test_get_into_an_empty_directory_is_verified_and_moved_into_place(node: FakeNode, tmp_path: Path) -> None:
    cid = node.add_directory(_tree(tmp_path / "src"))
    (tmp_path / "empty").mkdir()
    with SyncClient(node.url) as client:
        assert client.get(cid, tmp_path / "empty") == tmp_path / "empty"
        client.get(cid, tmp_path / "new" / "deeper")
    assert (tmp_path / "empty" / "sub" / "b.txt").read_text() == "beta\n"
    assert (tmp_path / "new" / "deeper" / "a.txt").read_text() == "alpha\n"


def test_job_result_into_a_non_empty_directory_is_a_usage_error_not_tampering(node: FakeNode, tmp_path: Path) -> None:
    result = node.add_directory(_tree(tmp_path / "src"))
    node.add_job(JOB, ["queued", "running", "done"], result)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("from an earlier run")
    with SyncClient(node.url) as client:
        job = client.job(JOB)
        with pytest.raises(UsageError, match="not empty"):
            job.result(out)
        assert (out / "old.txt").exists() and len(list(out.iterdir())) == 1
        assert (job.result(tmp_path / "fresh") / "a.txt").read_text() == "alpha\n"


def test_tampered_download_never_reaches_the_destination(node: FakeNode, tmp_path: Path) -> None:
    honest = node.add_file(b"the real bytes\n")
    node.blobs[str(honest)].body = b"forged bytes!!\n"
    with SyncClient(node.url) as client, pytest.raises(VerificationError, match="nothing was written"):
        client.get(honest, tmp_path / "file.txt")
    assert list(tmp_path.iterdir()) == []  # neither the forged file nor a scratch directory


def test_cat_of_a_directory_says_so(node: FakeNode, tmp_path: Path) -> None:
    cid = node.add_directory(_tree(tmp_path / "src"))
    with SyncClient(node.url) as client:
        with pytest.raises(UsageError, match="is a directory; download it with get"):
            client.cat(cid)
        assert client.cat(node.add_file(b"plain\n")) == b"plain\n"


def test_cat_of_tampered_bytes_is_a_verification_error(node: FakeNode) -> None:
    cid = node.add_file(b"true\n")
    node.blobs[str(cid)].body = b"false\n"
    with SyncClient(node.url) as client, pytest.raises(VerificationError, match="does not hash"):
        client.cat(cid)


def test_sync_events_arrive_while_the_job_runs(node: FakeNode) -> None:
    node.add_job(JOB, ["queued", "running", "done"])
    seen_first = threading.Event()
    held: list[bool] = []

    def hold(index: int) -> None:  # the node sends "running" only once the client has seen "queued"
        if index == 1:
            held.append(seen_first.wait(10))

    node.between_events = hold
    states = []
    with SyncClient(node.url) as client:
        for event in client.job(JOB).events():
            states.append(event["state"])
            seen_first.set()
    assert states == ["queued", "running", "done"]
    assert held == [True], "the first event reached the caller only after the stream ended"


def test_wait_follows_the_event_stream_instead_of_polling(node: FakeNode) -> None:
    job = node.add_job(JOB, ["queued", "running", "done"])
    job["state"] = "running"
    released = threading.Event()

    def slow_end(index: int) -> None:
        if index == 2:
            released.wait(1.0)
            job["state"] = "done"

    node.between_events = slow_end
    with SyncClient(node.url) as client:
        waited = client.job(JOB).wait(timeout=30)
    assert waited.status == "done"
    polls = [r for r in node.requests if r == f"GET /v1/jobs/{JOB}"]
    assert len(polls) <= 2, f"the job was polled {len(polls)} times"


def test_wait_follows_again_when_the_stream_ends_early(node: FakeNode) -> None:
    job = node.add_job(JOB, ["queued", "running"])  # the stream ends before the job does
    calls = {"n": 0}

    def finish(index: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # during the second stream, the job ends
            job["state"] = "done"
            job["transitions"].append({"state": "done", "at": 2, "reason": "finished"})

    node.between_events = finish
    with SyncClient(node.url) as client:
        assert client.job(JOB).wait(timeout=30).status == "done"


def test_cancel_async_and_sync(node: FakeNode) -> None:
    node.add_job(JOB, ["queued", "running"])
    node.add_job("b" * 32, ["queued"])
    with SyncClient(node.url) as client:
        assert client.job(JOB).cancel().status == "cancelled"

    async def scenario() -> str:
        async with Client(node.url) as client:
            job = await client.job("b" * 32)
            return (await job.cancel()).status

    assert asyncio.run(scenario()) == "cancelled"
    assert node.requests.count(f"DELETE /v1/jobs/{JOB}") == 1


def test_a_port_that_does_not_speak_http_is_one_clear_error() -> None:
    with not_http() as url, SyncClient(url) as client, pytest.raises(NodeUnreachableError, match="not its libp2p"):
        client.node()


def test_put_of_bytes_and_directories_is_checked(node: FakeNode, tmp_path: Path) -> None:
    with SyncClient(node.url) as client:
        cid = client.put(_tree(tmp_path / "src"))
        assert str(cid) in node.blobs
        assert client.put(b"bytes") == CID.parse(str(node.add_file(b"bytes")))
