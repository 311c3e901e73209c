"""Two real node processes: A holds a stream and runs a trigger on it, B holds a replica and stands
by for the trigger. B follows A's receipts over /mycel/trigger/1.0.0; A is killed mid-stream, B
takes over from the last receipt it adopted, with the state that receipt names (fetched from A
while it lived). B's history names every entry exactly once, the first batches signed by A and
the rest by B, and the folded state counts all 50 entries with no gap and no repeat."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import nacl.signing

from node.cluster import http_json, stop_process
from sdk import Client
from tests.node.triggers.agents import COUNTER, write_agent

PACED = COUNTER.replace("for entry in", "__import__('time').sleep(1.0)\nfor entry in")  # A is mid-stream for a while


def _wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_standby_replica_takes_over_when_the_active_node_dies(cluster: Any, tmp_path: Any) -> None:
    a, b = cluster(2, timeout=30)
    key = nacl.signing.SigningKey(b"f" * 32)
    agent_dir = write_agent(tmp_path / "counter", "counter", PACED)

    async def setup() -> str:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            assert await at_a.deploy(agent_dir) == await at_b.deploy(agent_dir)
            stream = at_a.stream("feed", key)
            await stream.append(*[f"e{i}".encode() for i in range(1, 51)])
            subscribed = await at_b._call("POST", f"/v1/streams/{stream.id}/subscribe", json={"peer": a.peer_id})
            assert subscribed["head_seq"] == 50  # B holds every entry: it can go on alone
            await at_a.deploy_trigger("count", "counter", "stream", stream=stream.id, every_n=10)
            standby = await at_b.deploy_trigger("count", "counter", "stream", stream=stream.id, every_n=10,
                                                standby=a.peer_id)  # fmt: skip
            assert not standby["active"]
            return stream.id

    stream_id = asyncio.run(setup())
    on_b = f"{b.api_url}/v1/triggers/count"
    _wait(lambda: http_json(on_b)["cursor"]["seq"] >= 20)  # B adopted A's first receipts
    stop_process(a.pid, timeout=0)  # SIGKILL, mid-stream
    _wait(lambda: http_json(on_b)["cursor"]["seq"] == 50)
    assert http_json(on_b)["active"]

    async def history() -> list[Any]:
        async with Client(b.api_url) as client:
            return await client.triggers.receipts("count")

    found = asyncio.run(history())
    assert [(r.run.first_seq, r.run.last_seq) for r in found] == [(1 + 10 * i, 10 * (i + 1)) for i in range(5)]
    nodes = [r.receipt.node for r in found]
    assert nodes[0] == a.peer_id and nodes[-1] == b.peer_id and nodes == sorted(nodes, key=[a.peer_id, b.peer_id].index)
    entries = http_json(f"{b.api_url}/v1/streams/{stream_id}/entries?after=0&limit=100")["entries"]
    assert [str(c) for r in found for c in r.run.entries] == [e["cid"] for e in entries]
    state = http_json(on_b)["cursor"]["state"]
    with urllib.request.urlopen(f"{b.api_url}/v1/blobs/{state}") as response:
        assert json.loads(response.read()) == {"count": 50, "last": 50, "gaps": 0, "repeats": 0}
