"""Real nodes in three regions (A region-a, B region-b, C region-c) and a stream's writer-signed policy.

Replication: once the writer allows only region-a and region-b, the origin A refuses C's pulls (C
had subscribed before: it gets nothing appended after), and C, having learnt the policy, refuses to
subscribe again; B goes on replicating. Placement: a trigger deployed through C asking for region-c
is refused (the policy forbids it); asking for nothing, the policy places it on the origin A, and A
keeps the placement explanation in the trigger's record.

Failover: A runs a trigger, B (region-b) and C (region-c) stand by for it with the trigger's regions
region-a and region-b. A is killed mid-stream: B takes over; C, outside the regions, does not take
over and says why, while its history holds only A's receipts."""

from __future__ import annotations

import asyncio
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import nacl.signing
import pytest

from node.cluster import http_json, stop_process
from sdk import Client
from sdk.errors import NodeApiError
from tests.node.triggers.agents import COUNTER, write_agent
from tests.node.triggers.test_failover import PACED

REGIONS = ["region-a", "region-b", "region-c"]


def _wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _head(api_url: str, stream: str) -> int:
    try:
        return int(http_json(f"{api_url}/v1/streams/{stream}")["head_seq"])
    except urllib.error.HTTPError:
        return 0


def _holds(api_url: str, stream: str, peer: str, seq: int) -> bool:
    holders = http_json(f"{api_url}/v1/streams/{stream}/holders")["holders"]
    return any(h["peer"] == peer and h["seq"] >= seq for h in holders)


def test_the_writers_policy_bounds_replication_and_trigger_placement(cluster: Any, tmp_path: Any, mycel: Any) -> None:
    a, b, c = cluster(3, regions=REGIONS, timeout=30)
    key = nacl.signing.SigningKey(b"p" * 32)
    agent_dir = write_agent(tmp_path / "counter", "counter", COUNTER)

    async def setup() -> str:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b, Client(c.api_url) as at_c:
            stream = at_a.stream("feed", key, regions=REGIONS)  # the policy is set before the first entry
            await stream.append(*[f"e{i}".encode() for i in range(1, 6)])
            assert (await stream.policy()) is not None
            for client in (at_b, at_c):  # every region allowed: both replicate
                subscribed = await client._call("POST", f"/v1/streams/{stream.id}/subscribe", json={"peer": a.peer_id})
                assert subscribed["head_seq"] == 5
            kept = await stream.set_policy(["region-a", "region-b"], version=2)  # narrower, signed here
            assert kept["policy"]["regions"] == ["region-a", "region-b"] and kept["replaced"]
            await stream.append(*[f"e{i}".encode() for i in range(6, 11)])
            return stream.id

    stream_id = asyncio.run(setup())
    _wait(lambda: _head(b.api_url, stream_id) == 10)  # B, inside the regions, goes on
    time.sleep(3 * 2.0)  # three of C's pulls (every 2 s): A refuses each
    assert _head(c.api_url, stream_id) == 5
    info = http_json(f"{a.api_url}/v1/streams/{stream_id}")
    assert info["policy"]["regions"] == ["region-a", "region-b"] and info["policy"]["regions_are_self_declared"]
    for node in (b, c):  # the replicas learn the newer policy from their source (C: at once, after A refused it)
        _wait(lambda node=node: http_json(f"{node.api_url}/v1/streams/{stream_id}")["policy"]["version"] == 2, 30)

    async def resubscribe() -> NodeApiError:
        async with Client(c.api_url) as at_c:
            with pytest.raises(NodeApiError) as refused:
                await at_c._call("POST", f"/v1/streams/{stream_id}/subscribe", json={"peer": b.peer_id})
            return refused.value

    refused = asyncio.run(resubscribe())
    assert refused.status == 403 and refused.error == "outside_regions" and "region-c" in refused.detail
    assert _head(c.api_url, stream_id) == 5
    _wait(lambda: _holds(c.api_url, stream_id, a.peer_id, 10) and _holds(c.api_url, stream_id, b.peer_id, 10))

    async def deploy() -> tuple[NodeApiError, dict[str, Any]]:
        async with Client(c.api_url) as at_c:
            await at_c.deploy(agent_dir)
            with pytest.raises(NodeApiError) as forbidden:
                await at_c.deploy_trigger("count", "counter", "stream", stream=stream_id, every_n=5,
                                          regions=["region-c"])  # fmt: skip
            answer = await at_c.deploy_trigger("count", "counter", "stream", stream=stream_id, every_n=5)
            return forbidden.value, answer

    forbidden, answer = asyncio.run(deploy())
    assert forbidden.status == 409 and forbidden.error == "region_forbidden_by_policy"
    assert "region-c" in forbidden.detail
    placement = answer["placement"]
    # A and B both hold seq 10 and neither's announcement says which is the origin: the lower peer ID wins
    chosen, other = (a, b) if a.peer_id < b.peer_id else (b, a)
    assert placement["peer_id"] == chosen.peer_id and placement["placed_by"] == c.peer_id
    assert placement["regions"] == placement["policy_regions"] == ["region-a", "region-b"]
    role = "the stream's origin" if chosen is a else "a replica of the stream"
    assert placement["reason"] == f"{role} in region {chosen.region}, at the head (seq 10)"  # as it said itself
    verdicts = {row["peer_id"]: row["verdict"] for row in placement["candidates"]}
    assert verdicts == {chosen.peer_id: "chosen", other.peer_id: "behind", c.peer_id: "outside_regions"}
    shown = http_json(f"{chosen.api_url}/v1/triggers/count")  # kept where it runs, with the trigger's record
    assert shown["placement"] == placement and shown["regions"] == ["region-a", "region-b"]
    assert shown["deployed_by"] == c.peer_id
    _wait(lambda: http_json(f"{chosen.api_url}/v1/triggers/count")["cursor"]["seq"] == 10)
    listed = mycel("trigger", "ls", "--api", chosen.api_url)
    assert listed.returncode == 0, listed.stderr
    assert f"placed on {chosen.peer_id} by {c.peer_id}: {role} in region {chosen.region}" in listed.stdout
    assert f"outside_regions {c.peer_id} (region-c)" in listed.stdout

    # the CLI: the policy is signed with the writer key and set at creation; a bad region is refused first
    key_file = tmp_path / "cli.key"
    created = mycel("stream", "create", "cli", "--key", key_file, "--region", "region-b", "--api", a.api_url)
    assert created.returncode == 0, created.stderr
    cli_stream, said = created.stdout.splitlines()
    assert said == "policy v1: entries only to region(s) region-b"
    shown = http_json(f"{a.api_url}/v1/streams/{cli_stream}/policy")["policy"]
    assert shown["regions"] == ["region-b"] and shown["version"] == 1
    again = mycel("stream", "create", "cli", "--key", key_file, "--region", "region-b", "--api", a.api_url)
    assert again.returncode == 0, again.stderr  # the same regions held already: fine
    other = mycel("stream", "create", "cli", "--key", key_file, "--region", "region-c", "--api", a.api_url)
    assert other.returncode == 2 and "sign a higher version" in other.stderr and "region-b" in other.stderr
    bad = mycel("stream", "create", "cli", "--key", key_file, "--region", "Bad Region", "--api", a.api_url)
    assert bad.returncode == 2 and "region" in bad.stderr
    changed = mycel("stream", "policy", "cli", "--key", key_file, "--region", "region-c", "--version", "2",
                    "--api", a.api_url)  # fmt: skip
    assert changed.returncode == 0 and '"replaced": true' in changed.stdout, changed.stderr


def test_a_standby_outside_the_regions_does_not_take_over(cluster: Any, tmp_path: Any) -> None:
    a, b, c = cluster(3, regions=REGIONS, timeout=30)
    key = nacl.signing.SigningKey(b"q" * 32)
    agent_dir = write_agent(tmp_path / "counter", "counter", PACED)
    inside = ["region-a", "region-b"]

    async def setup() -> str:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b, Client(c.api_url) as at_c:
            assert await at_a.deploy(agent_dir) == await at_b.deploy(agent_dir) == await at_c.deploy(agent_dir)
            stream = at_a.stream("feed", key)
            await stream.append(*[f"e{i}".encode() for i in range(1, 51)])
            for client in (at_b, at_c):
                subscribed = await client._call("POST", f"/v1/streams/{stream.id}/subscribe", json={"peer": a.peer_id})
                assert subscribed["head_seq"] == 50
            await at_a.deploy_trigger("count", "counter", "stream", stream=stream.id, every_n=10, regions=inside)
            for client in (at_b, at_c):
                standby = await client.deploy_trigger("count", "counter", "stream", stream=stream.id, every_n=10,
                                                      standby=a.peer_id, regions=inside)  # fmt: skip
                assert not standby["active"] and standby["regions"] == inside
            return stream.id

    stream_id = asyncio.run(setup())
    on_b, on_c = f"{b.api_url}/v1/triggers/count", f"{c.api_url}/v1/triggers/count"
    assert http_json(on_b)["takeover"] == {"allowed": True, "reason": None, "held_back": None}
    assert not http_json(on_c)["takeover"]["allowed"] and "region-c" in http_json(on_c)["takeover"]["reason"]
    _wait(lambda: http_json(on_b)["cursor"]["seq"] >= 20 and http_json(on_c)["cursor"]["seq"] >= 20)
    stop_process(a.pid, timeout=0)  # SIGKILL, mid-stream
    _wait(lambda: http_json(on_b)["cursor"]["seq"] == 50)
    assert http_json(on_b)["active"]
    _wait(lambda: http_json(on_c)["takeover"]["held_back"] is not None)  # A is gone; C says why it waits
    time.sleep(3)  # well past its decision: it still does not run the trigger
    view = http_json(on_c)
    assert not view["active"] and "not one of the trigger's regions" in view["takeover"]["held_back"]

    async def history(url: str) -> list[Any]:
        async with Client(url) as client:
            return await client.triggers.receipts("count")

    on_c_receipts = asyncio.run(history(c.api_url))
    assert on_c_receipts and {r.receipt.node for r in on_c_receipts} == {a.peer_id}  # only what it adopted
    assert view["cursor"]["seq"] == on_c_receipts[-1].run.last_seq < 50
    on_b_receipts = asyncio.run(history(b.api_url))
    assert on_b_receipts[-1].receipt.node == b.peer_id and on_b_receipts[-1].run.last_seq == 50
    entries = http_json(f"{b.api_url}/v1/streams/{stream_id}/entries?after=0&limit=100")["entries"]
    assert [str(cid) for r in on_b_receipts for cid in r.run.entries] == [e["cid"] for e in entries]
