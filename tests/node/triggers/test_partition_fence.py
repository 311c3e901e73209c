"""A real partition (the WAN harness: network namespaces and a router that drops the cut site's
packets): node A runs a trigger with B as its follower, B stands by on a replica. A is cut off,
not killed: it keeps running, B takes over. After healing, B's fence reaches A, A reports it was
fenced, and across both output streams each batch's output appears exactly once; the receipts
served name each entry once. Needs root (namespaces); skips with one line elsewhere."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.cluster import http_json
from node.harness import netns
from node.harness.planet import Planet
from node.harness.topology import Site, Topology
from sdk import Client
from storage.streamentry import verify_entry
from tests.harness.wan import skip_reason
from tests.node.triggers.agents import COUNTER, write_agent

PACED = COUNTER.replace("for entry in", "__import__('time').sleep(0.5)\nfor entry in")  # A is mid-stream a while
TWO_SITES = Topology(sites=(Site("eu", "eu"), Site("us", "us")), metro_rtt_ms={("eu", "us"): 10.0})


def _wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def wan(tmp_path: Path) -> Iterator[Planet]:
    reason = skip_reason()
    if reason:
        pytest.skip(f"WAN harness: {reason}")
    for name in netns.orphans():
        netns.destroy(name)
    with Planet(TWO_SITES, tmp_path / "wan") as planet:
        yield planet
    assert planet.leftovers() == []


def test_a_cut_off_active_node_is_fenced_and_no_output_appears_twice(wan: Planet, tmp_path: Path) -> None:
    a, b = wan.start_nodes(["eu", "us"])
    wan.wait_mesh()
    key = nacl.signing.SigningKey(b"p" * 32)
    agent_dir = write_agent(tmp_path / "counter", "counter", PACED)

    async def setup() -> str:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            assert await at_a.deploy(agent_dir) == await at_b.deploy(agent_dir)
            stream = at_a.stream("feed", key)
            await stream.append(*[f"e{i}".encode() for i in range(1, 61)])
            subscribed = await at_b._call("POST", f"/v1/streams/{stream.id}/subscribe", json={"peer": a.peer_id})
            assert subscribed["head_seq"] == 60  # B holds every entry: it can go on alone
            options: dict[str, Any] = {"stream": stream.id, "every_n": 10, "output": "counts"}
            await at_a.deploy_trigger("count", "counter", "stream", follower=b.peer_id, **options)
            await at_b.deploy_trigger("count", "counter", "stream", standby=a.peer_id, **options)
            return stream.id

    asyncio.run(setup())
    on_a, on_b = f"{a.api_url}/v1/triggers/count", f"{b.api_url}/v1/triggers/count"
    _wait(lambda: http_json(on_b)["cursor"]["seq"] >= 20)  # B adopted A's first receipts
    wan.partition("eu")  # A is cut off from B; both keep running
    _wait(lambda: http_json(on_b)["active"] and http_json(on_b)["cursor"]["seq"] == 60)
    cut = http_json(on_a)
    assert cut["running"] and cut["cursor"]["fenced"] is None  # A does not know yet
    wan.heal()
    _wait(lambda: http_json(on_a)["cursor"]["fenced"] is not None)  # B's fence reached A
    fenced = http_json(on_a)
    assert fenced["cursor"]["fenced"]["by"] == b.peer_id and not fenced["active"]
    _wait(lambda: not http_json(on_a)["running"] and http_json(on_b)["old_active_fenced"])
    assert fenced["cursor"]["fenced"]["void"] <= 1  # A ran one batch past what B held, at most

    def outputs(node_url: str, stream: str) -> list[str]:
        found = http_json(f"{node_url}/v1/streams/{stream}/entries?after=0&limit=100")["entries"]
        return [verify_entry(base64.b64decode(entry["data"])).payload.decode() for entry in found]  # type: ignore[union-attr]

    from_a = outputs(a.api_url, fenced["output_stream"])
    from_b = outputs(b.api_url, http_json(on_b)["output_stream"])
    assert from_a + from_b == ["10", "20", "30", "40", "50", "60"]  # each batch's output once, none lost

    async def receipts() -> tuple[list[Any], list[Any]]:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            return await at_a.triggers.receipts("count"), await at_b.triggers.receipts("count")

    served_a, history_b = asyncio.run(receipts())
    ranges = [(r.run.first_seq, r.run.last_seq) for r in history_b]
    assert ranges == [(1 + 10 * i, 10 * (i + 1)) for i in range(6)]  # B's history: every entry once
    assert [r.receipt_bytes for r in served_a] == [r.receipt_bytes for r in history_b[: len(served_a)]]
    assert all(r.receipt.node == a.peer_id for r in history_b[: len(served_a)])
    assert all(r.receipt.node == b.peer_id for r in history_b[len(served_a) :])
