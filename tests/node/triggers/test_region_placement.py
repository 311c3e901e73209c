"""Three real nodes in three regions: a stream appended at its origin A (region-a), replicated at B
(region-b). A trigger deployed through C (region-c) asking for region-b runs on the replica B, the
placement saying why; its receipts name every entry B consumed. Asking for a region where no node
holds the stream, or naming a follower outside the regions, is refused, typed, and the stream's
entries never reach C."""

from __future__ import annotations

import asyncio
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import nacl.signing
import pytest

from node.cluster import http_json
from sdk import Client
from sdk.errors import NodeApiError
from tests.node.triggers.agents import COUNTER, write_agent


def _wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _holds(api_url: str, stream: str, peer: str, seq: int) -> bool:
    holders = http_json(f"{api_url}/v1/streams/{stream}/holders")["holders"]
    return any(h["peer"] == peer and h["seq"] >= seq for h in holders)


def test_a_trigger_asking_for_a_region_runs_on_the_replica_there(cluster: Any, tmp_path: Any) -> None:
    a, b, c = cluster(3, regions=["region-a", "region-b", "region-c"], timeout=30)
    key = nacl.signing.SigningKey(b"r" * 32)
    agent_dir = write_agent(tmp_path / "counter", "counter", COUNTER)

    async def setup() -> str:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            stream = at_a.stream("feed", key)
            await stream.append(*[f"e{i}".encode() for i in range(1, 21)])
            subscribed = await at_b._call("POST", f"/v1/streams/{stream.id}/subscribe", json={"peer": a.peer_id})
            assert subscribed["head_seq"] == 20
            return stream.id

    stream_id = asyncio.run(setup())
    _wait(lambda: _holds(c.api_url, stream_id, b.peer_id, 20) and _holds(c.api_url, stream_id, a.peer_id, 20))

    async def deploy() -> tuple[dict[str, Any], NodeApiError]:
        async with Client(c.api_url) as at_c:
            await at_c.deploy(agent_dir)
            with pytest.raises(NodeApiError) as refused:
                await at_c.deploy_trigger("count", "counter", "stream", stream=stream_id, every_n=5,
                                          regions=["region-z"])  # fmt: skip
            with pytest.raises(NodeApiError) as outside:  # its follower would get the trigger's state
                await at_c.deploy_trigger("count", "counter", "stream", stream=stream_id, every_n=5,
                                          regions=["region-b"], follower=a.peer_id)  # fmt: skip
            assert outside.value.status == 409 and outside.value.error == "follower_outside_regions"
            answer = await at_c.deploy_trigger("count", "counter", "stream", stream=stream_id, every_n=5,
                                               regions=["region-b"])  # fmt: skip
            return answer, refused.value

    answer, refused = asyncio.run(deploy())
    assert refused.status == 409 and refused.error == "no_holder_in_regions"
    assert "region-z" in refused.detail and a.peer_id in refused.detail
    placement = answer["placement"]
    assert placement["peer_id"] == b.peer_id and placement["regions"] == ["region-b"]
    assert placement["reason"] == "a replica of the stream in region region-b, at the head (seq 20)"  # B said so
    verdicts = {row["peer_id"]: row["verdict"] for row in placement["candidates"]}
    assert verdicts == {b.peer_id: "chosen", a.peer_id: "outside_regions"}
    assert answer["deployed_by"] == c.peer_id  # the view B sent back

    on_b = f"{b.api_url}/v1/triggers/count"
    _wait(lambda: http_json(on_b)["cursor"]["seq"] == 20)

    async def history() -> list[Any]:
        async with Client(b.api_url) as client:
            return await client.triggers.receipts("count")

    found = asyncio.run(history())
    assert [(r.run.first_seq, r.run.last_seq) for r in found] == [(1 + 5 * i, 5 * (i + 1)) for i in range(4)]
    assert {r.receipt.node for r in found} == {b.peer_id}
    entries = http_json(f"{b.api_url}/v1/streams/{stream_id}/entries?after=0&limit=100")["entries"]
    assert [str(cid) for r in found for cid in r.run.entries] == [e["cid"] for e in entries]
    for node in (a, c):  # the trigger is only on B, and C never held the stream
        with pytest.raises(urllib.error.HTTPError) as missing:
            http_json(f"{node.api_url}/v1/triggers/count")
        assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as absent:
        http_json(f"{c.api_url}/v1/streams/{stream_id}")
    assert absent.value.code == 404
