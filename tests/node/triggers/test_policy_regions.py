"""A stream trigger's regions in process: the stream's writer-signed policy bounds them (a region it
forbids is refused, typed; none asked means the policy's), the placement explanation is kept in the
trigger's record and shown by GET /v1/triggers/{name} across a restart, a node outside them refuses
to run it, and a placement or regions a peer sends with a deploy are checked field by field."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agents.bundle import pack
from node.triggers.model import TriggerError, TriggerKind, TriggerSpec
from node.triggers.placement import (
    MAX_CANDIDATES,
    Holder,
    Placement,
    Role,
    choose,
    effective_regions,
    takeover_refusal,
)
from node.triggers.protocol import Deploy
from node.triggers.service import TriggerService
from node.triggers.store import TriggerStore
from storage.streampolicy import sign_policy
from tests.node.streams.helpers import Writer
from tests.node.test_openapi import check
from tests.node.triggers.agents import COUNTER, write_agent

STREAM = "st" + "a" * 52


def test_effective_regions_are_the_request_inside_the_policy() -> None:
    assert effective_regions(["eu"], [], STREAM) == ("eu",)  # no policy: the request
    assert effective_regions([], ["eu", "us"], STREAM) == ("eu", "us")  # none asked: the policy's
    assert effective_regions(["us"], ["eu", "us"], STREAM) == ("us",)
    with pytest.raises(TriggerError) as refused:
        effective_regions(["us", "ap"], ["eu", "us"], STREAM)
    assert refused.value.code == "region_forbidden_by_policy" and refused.value.status == 409
    assert "ap is not one of them" in str(refused.value)


def test_a_standby_may_take_over_only_inside_the_regions_and_the_policy() -> None:
    assert takeover_refusal("eu", (), ()) is None
    assert takeover_refusal("eu", ("eu",), ("eu", "us")) is None
    assert "not one of the trigger's regions" in str(takeover_refusal("us", ("eu",), ()))
    assert "policy allows only eu" in str(takeover_refusal("us", (), ("eu",)))


def test_the_stored_placement_is_bounded_and_round_trips() -> None:
    holders = [Holder(f"12D3KooWPeer{'ABCDEFGHJKMNPQRSTUVWXYZ'[i]}", "eu", 100 - i) for i in range(20)]
    placed = choose(STREAM, holders, ["eu"]).by("12D3KooWPacer", ["eu"])
    record = placed.json()
    assert len(record["candidates"]) == MAX_CANDIDATES and record["omitted"] == 20 - MAX_CANDIDATES
    assert record["candidates"][0]["verdict"] == "chosen" and record["placed_by"] == "12D3KooWPacer"
    assert Placement.from_json(record).json() == record


def _placement_record() -> dict[str, Any]:
    return choose(STREAM, [Holder("12D3KooWChosen", "eu", 5)], ["eu"]).json()


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(extra=1),
        lambda p: p.pop("reason"),
        lambda p: p.update(stream="nope"),
        lambda p: p.update(head_seq=-1),
        lambda p: p.update(head_seq=True),
        lambda p: p.update(regions="eu"),
        lambda p: p.update(regions=["r"] * 17),
        lambda p: p.update(policy_regions=[1]),
        lambda p: p.update(placed_by="not a peer!"),
        lambda p: p.update(candidates=[]),
        lambda p: p.update(candidates=p["candidates"] * (MAX_CANDIDATES + 1)),
        lambda p: p.update(candidates=p["candidates"] * 2),  # the same holder twice, two chosen
        lambda p: p.update(peer_id="12D3KooWOther"),  # the chosen one is not the one named
        lambda p: p["candidates"][0].update(verdict="best"),
        lambda p: p["candidates"][0].update(role=5),
        lambda p: p["candidates"][0].update(reason="x" * 10_000),
        lambda p: p["candidates"][0].update(region=["eu"]),
        lambda p: p["candidates"][0].update(seq="5"),
        lambda p: p["candidates"][0].update(here="yes"),
        lambda p: p["candidates"][0].update(extra=1),
        lambda p: p.update(candidates=["x"]),
    ],
)
def test_a_hostile_placement_from_a_peer_is_refused(change: Any) -> None:
    record = _placement_record()
    change(record)
    with pytest.raises(TriggerError) as refused:
        Placement.from_json(record)
    assert refused.value.code == "bad_placement"


def test_a_spec_record_from_before_regions_still_loads() -> None:
    spec = TriggerSpec("t", _agent(), TriggerKind.STREAM, STREAM, regions=("eu",), placement=_placement_record())
    old = spec.record()
    del old["regions"], old["placement"]
    loaded = TriggerSpec.from_record(old)
    assert loaded.regions == () and loaded.placement is None
    assert "regions" not in loaded.wire() and "placement" not in loaded.wire()  # what an old peer accepts
    assert spec.wire()["regions"] == ["eu"] and TriggerSpec.from_record(spec.record()) == spec


def _agent() -> Any:
    from storage.cid import CID

    return CID.parse("bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")


async def _writer_stream(node: Any, tmp_path: Path) -> Writer:
    pack(write_agent(tmp_path / "counter", "counter", COUNTER), node.store)
    writer = Writer("feed")
    await node.streams.append(writer.stream, [writer.next(f"e{i}".encode()) for i in range(1, 6)])
    return writer


async def test_the_placement_is_kept_and_shown_across_a_restart(
    node: Any, client: TestClient[Any, Any], tmp_path: Path
) -> None:
    writer = await _writer_stream(node, tmp_path)
    body = {"name": "count", "agent": "counter", "kind": "stream", "stream": writer.stream, "regions": ["local"]}
    response = await client.post("/v1/triggers", json=body)
    answer = await check(response, "/v1/triggers", "POST")
    assert response.status == 201 and answer["regions"] == ["local"]
    placement = answer["placement"]
    assert placement["peer_id"] == node.identity.peer_id and placement["reason"].startswith("the stream's origin")
    response = await client.get("/v1/triggers/count")
    shown = await check(response, "/v1/triggers/{name}", "GET")
    assert shown["placement"] == placement and shown["regions"] == ["local"]
    await node.triggers.stop()  # a restart: a new service over the same LMDB record
    node.triggers.store.close()
    again = TriggerService(TriggerStore(tmp_path / "triggers"), node.streams, node.store, node.executor, node.metrics)
    await again.start()
    try:
        assert again.describe("count")["placement"] == placement
        assert again.describe("count")["regions"] == ["local"]
    finally:
        await again.stop()
        node.triggers = again  # the fixture stops and closes this one


async def test_the_stream_policy_bounds_where_a_trigger_runs(
    node: Any, client: TestClient[Any, Any], tmp_path: Path
) -> None:
    writer = await _writer_stream(node, tmp_path)
    signed = sign_policy(writer.key, "feed", ["local", "eu-west"])
    response = await client.post(f"/v1/streams/{writer.stream}/policy",
                                 json={"record": base64.b64encode(signed.data).decode()})  # fmt: skip
    assert response.status == 201
    body = {"name": "count", "agent": "counter", "kind": "stream", "stream": writer.stream}
    response = await client.post("/v1/triggers", json={**body, "regions": ["us-east"]})
    refused = await response.json()
    assert response.status == 409 and refused["error"] == "region_forbidden_by_policy"
    assert "us-east" in refused["detail"] and "local, eu-west" in refused["detail"]
    response = await client.post("/v1/triggers", json=body)  # none asked: the policy's regions place it
    answer = await check(response, "/v1/triggers", "POST")
    assert answer["regions"] == ["local", "eu-west"] and answer["placement"]["policy_regions"] == ["local", "eu-west"]
    # a newer policy leaves this node out: it refuses to run the trigger (a peer's deploy, or a redeploy)
    narrower = sign_policy(writer.key, "feed", ["eu-west"], version=2)
    node.streams.policy.put(narrower.data)
    spec = TriggerSpec("other", _agent(), TriggerKind.STREAM, writer.stream)
    with pytest.raises(TriggerError) as outside:
        await node.triggers.deploy(spec)
    assert outside.value.code == "outside_regions" and "policy allows only eu-west" in str(outside.value)
    response = await client.post("/v1/triggers", json=body)
    assert response.status == 409 and (await response.json())["error"] == "no_holder_in_regions"


async def test_regions_and_placement_a_peer_sends_are_checked(node: Any, tmp_path: Path) -> None:
    writer = await _writer_stream(node, tmp_path)
    agent = str(pack(write_agent(tmp_path / "counter", "counter", COUNTER), node.store).agent_id)
    base = {"name": "count", "agent": agent, "kind": "stream", "stream": writer.stream}
    own = node.identity.peer_id
    good = choose(writer.stream, [Holder(own, "local", 5, Role.HOLDER)], ["local"]).json()
    for extra, code in [
        ({"regions": "local"}, "bad_regions"),
        ({"regions": ["x" * 65]}, "bad_regions"),
        ({"regions": ["local"] * 2 + [f"r{i}" for i in range(16)]}, "bad_regions"),
        ({"regions": ["local"], "placement": {"stream": writer.stream}}, "bad_placement"),
        ({"regions": ["local"], "placement": {**good, "peer_id": "12D3KooWElse"}}, "bad_placement"),
        ({"regions": ["us-east"]}, "outside_regions"),  # this node is in region local
    ]:
        reply = await node.triggers._deploy_from("12D3KooWPeer", Deploy({**base, **extra}))
        assert reply.error == code, (extra, reply)
    reply = await node.triggers._deploy_from("12D3KooWPeer", Deploy({**base, "regions": ["local"], "placement": good}))
    assert reply.error == "" and reply.view is not None
    stored = node.triggers.describe("count")["placement"]
    assert stored["candidates"][0]["role"] == "origin"  # this node's store says so, and the reason follows
    assert stored["reason"].startswith("the stream's origin in region local")
