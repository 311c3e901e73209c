"""SyncClient where an event loop already runs in the calling thread, as in a Jupyter cell."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from sdk import SyncClient
from tests.sdk.fakenode import FakeNode, fake_node

JOB = "d" * 32


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with fake_node() as serving:
        yield serving


async def test_sync_client_calls_work_inside_a_running_loop(node: FakeNode) -> None:
    asyncio.get_running_loop()  # what a notebook cell runs in
    with SyncClient(node.url) as client:
        cid = client.put(b"from a notebook\n")
        assert client.cat(cid) == b"from a notebook\n"
        job = client.run(cid, wait=False)  # any CID: the fake node runs whatever it is given
        assert [event["state"] for event in job.events()] == ["queued", "running", "done"]
        assert job.wait().status == "done"
        assert job.receipt().job_id == job.job_id


def test_a_client_used_before_and_inside_a_loop_keeps_working(node: FakeNode) -> None:
    cid = node.add_file(b"both ways\n")
    client = SyncClient(node.url)
    assert client.cat(cid) == b"both ways\n"  # no loop here: runs in this thread

    async def cell() -> bytes:
        return client.cat(cid)

    assert asyncio.run(cell()) == b"both ways\n"
    assert client.cat(cid) == b"both ways\n"  # and after the loop ended
    client.close()
    assert not any(t.name == "mycel-sync-client" for t in threading.enumerate())  # close ends the helper
