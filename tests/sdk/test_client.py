"""The SDK against a real 2-node cluster: content, agents, jobs, errors (sync and async)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agents.bundle import agent_id_of
from node.cluster import free_port
from sdk import (
    AgentNotFoundError,
    Client,
    JobFailedError,
    NodeApiError,
    NodeUnreachableError,
    SyncClient,
    verify_bytes,
    verify_path,
)
from tests.support import REPO_ROOT, seeded_bytes

WORDCOUNT = REPO_ROOT / "examples" / "wasm-wordcount"


def test_sync_client_end_to_end(cluster: Any, tmp_path: Path) -> None:
    requester, holder = cluster(2, regions=["eu", "us"])
    data = seeded_bytes(3, 3 << 20)  # multi-chunk: a real UnixFS tree
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("red green red blue red\n")
    (tmp_path / "docs" / "deep" / "b.txt").write_text("green green\n")
    with SyncClient(holder.api_url) as at_holder:
        blob = at_holder.put(data)
        docs = at_holder.put(tmp_path / "docs")
        assert at_holder.node()["peer_id"] == holder.peer_id
    assert verify_bytes(blob, data) and verify_path(docs, tmp_path / "docs")

    with SyncClient(requester.api_url) as client:
        assert [p["peer_id"] for p in client.peers()] == [holder.peer_id]
        agent = client.deploy(WORDCOUNT)
        assert agent == agent_id_of(WORDCOUNT)
        job = client.run(agent, {"text": docs})
        assert job.status == "done" and job.node == holder.peer_id  # next to the data

        assert client.cat(blob) == data  # fetched over the network, re-hashed
        fetched = client.get(docs, tmp_path / "copy")
        assert (fetched / "deep" / "b.txt").read_text() == "green green\n"
        assert [e["state"] for e in job.events()][-1] == "done"
        assert job.explain()[0]["verdict"] == "chosen"
        assert job.receipt().node == holder.peer_id
        counts = json.loads((job.result(tmp_path / "result") / "counts.json").read_text())
        assert counts["words"] == 7 and counts["files"] == 2
        assert isinstance(job.logs(), dict)

        twice = client.run(agent, {"text": docs}, redundancy=2)  # both nodes, results compared
        assert sorted(twice.info["results"]) == sorted([requester.peer_id, holder.peer_id])
        assert len(set(twice.info["results"].values())) == 1

        with pytest.raises(JobFailedError, match="may not leave"):
            client.run(agent, {"text": docs}, region="mars")
        with pytest.raises(AgentNotFoundError, match=r"^no agent named not-a-cid on this node \(deploy it with"):
            client.run("not-a-cid")  # a name, not a CID: looked up, not "Pad bits must be zero"
        with pytest.raises(NodeApiError, match="no job"):
            client.job("f" * 32)


def test_async_client_streams_events(cluster: Any, tmp_path: Path) -> None:
    (node,) = cluster(1)

    async def scenario() -> list[str]:
        async with Client(node.api_url) as client:
            text = await client.put(b"one two two three three three\n")
            agent = await client.deploy(WORDCOUNT)
            job = await client.run(agent, {"text": text}, wait=False)
            states = [event["state"] async for event in job.events()]
            await job.wait()
            out = await job.result(tmp_path / "out")
            assert json.loads((out / "counts.json").read_text())["words"] == 6
            return states

    states = asyncio.run(scenario())
    assert states[0] == "queued" and states[-1] == "done" and "running" in states


def test_unreachable_node_is_one_clear_error() -> None:
    with (
        SyncClient(f"http://127.0.0.1:{free_port()}") as client,
        pytest.raises(NodeUnreachableError, match="no mycelnet node"),
    ):
        client.node()
