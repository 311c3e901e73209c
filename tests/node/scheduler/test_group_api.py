"""Group jobs through the real API app in process: submit, status and explain under the group's
one job id, validated against the OpenAPI document; malformed groups refused with the reason."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from node.api.openapi import document
from storage.cid import CID
from storage.privacy.dp import DpTerms
from tests.node.apinode import api_node
from tests.node.test_openapi import _validator

__all__ = ["api_node"]  # the fixture, used by name

DOC = document("test")


async def _wait_done(client: TestClient[Any, Any], job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            answer: dict[str, Any] = await (await client.get(f"/v1/jobs/{job_id}")).json()
            if answer["state"] in ("done", "failed", "cancelled"):
                return answer
            await asyncio.sleep(0.02)


@pytest.mark.timeout(60)
async def test_a_group_is_submitted_followed_and_explained_under_one_job_id(api_node: Any) -> None:
    client, _, cluster = api_node
    executor = cluster.executors[0].peer_id
    data = CID.for_block(b"site records")
    cluster.store.put(data, b"site records")

    async def holders(cid: CID) -> dict[str, int]:
        return {executor: 12} if cid == data else {}

    async def have_size(cid: CID) -> int | None:
        return None

    cluster.requester.exchange.holders, cluster.requester.exchange.have_size = holders, have_size
    body = {"agent": str(cluster.agent), "datasets": {"site-a": str(data)}, "aggregator": str(cluster.agent)}
    response = await client.post("/v1/groups", json=body)
    assert response.status == 201, await response.text()
    group_id = (await response.json())["job_id"]

    group = await _wait_done(client, group_id)
    assert group["group"] is True and group["state"] == "done", group
    assert group["runs"]["site-a"]["node"] == executor and group["runs"]["site-a"]["receipt"]
    assert group["result"] == group["aggregate"]["result"]
    assert _validator({"$ref": "#/components/schemas/Group"}).is_valid(group)
    assert await (await client.get(f"/v1/groups/{group_id}")).json() == group

    placement = await (await client.get(f"/v1/jobs/{group_id}/placement")).json()
    assert [run["dataset"] for run in placement["runs"]] == ["site-a", "(aggregate)"]
    assert [c["peer_id"] for c in placement["runs"][0]["candidates"] if c["verdict"] == "chosen"] == [executor]
    assert _validator({"$ref": "#/components/schemas/GroupPlacement"}).is_valid(placement)

    url = str(client.make_url("")).rstrip("/")
    for command, expected in (("status", "run site-a: done on " + executor), ("explain", "== site-a: job ")):
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.cli.main", "job", command, group_id, "--api", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await cli.communicate()
        assert cli.returncode == 0 and expected in out.decode(), (out, err)

    slow = await (await client.post("/v1/groups", json={**body, "args": ["30"]})).json()
    async with asyncio.timeout(10):
        while cluster.executors[0].runtime.runs < 3:  # two of the first group, then this run
            await asyncio.sleep(0.01)
    cancelled = await (await client.delete(f"/v1/jobs/{slow['job_id']}")).json()
    assert cancelled["state"] == "cancelled" and cancelled["runs"]["site-a"]["state"] == "cancelled", cancelled


@pytest.mark.timeout(60)
async def test_dp_terms_are_given_to_every_run_and_their_loss_recorded_by_the_node(api_node: Any) -> None:
    client, _, cluster = api_node
    data = CID.for_block(b"site records")
    cluster.store.put(data, b"site records")
    body = {"agent": str(cluster.agent), "datasets": {"site-a": str(data)}, "aggregator": str(cluster.agent),
            "args": ["0"], "dp": {"clip": 0.5, "noise_multiplier": 1.1}}  # fmt: skip
    response = await client.post("/v1/groups", json=body)
    assert response.status == 201, await response.text()
    group = await _wait_done(client, (await response.json())["job_id"])  # the harness's agent takes no such args
    terms = DpTerms(0.5, 1.1)
    run = group["runs"]["site-a"]
    assert cluster.jobs.get(run["job_id"]).spec.args == ("0", *terms.args())  # the client's, then the node's
    assert run["dp"] == {**terms.record(), "rho": terms.rho, "epsilon": terms.epsilon()}  # from the terms alone
    assert _validator({"$ref": "#/components/schemas/Group"}).is_valid(group)
    assert terms.epsilon(3) < 3 * terms.epsilon()  # zCDP composes more tightly than adding epsilons


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"datasets": {"a": "bafyx"}, "aggregator": "bafyx"}, "agent"),
        ({"agent": "x", "datasets": {}, "aggregator": "y"}, "agent"),
        ({"agent": "AGENT", "datasets": {"a": 5}, "aggregator": "AGENT"}, "a CID is a string"),
        ({"agent": "AGENT", "datasets": {}, "aggregator": "AGENT"}, "at least one dataset"),
        ({"agent": "AGENT", "datasets": {"a": "AGENT"}, "aggregator": "AGENT", "job_id": "nope"}, "job_id"),
        ({"agent": "AGENT", "datasets": {"a": "AGENT"}, "aggregator": "AGENT", "colour": 1}, "unknown group field"),
        (
            {"agent": "AGENT", "datasets": {"a": "AGENT"}, "aggregator": "AGENT", "access": {"b": "00"}},
            "access names dataset(s) ['b'] that the group does not",
        ),
        (
            {"agent": "AGENT", "datasets": {"a": "AGENT"}, "aggregator": "AGENT", "access": {"a": "zz"}},
            "hex of a signed",
        ),
        (
            {"agent": "AGENT", "datasets": {"a": "AGENT"}, "aggregator": "AGENT", "access": {"a": 5}},
            "hex access proofs",
        ),
        (
            {"agent": "AGENT", "datasets": {"a": "AGENT"}, "aggregator": "AGENT", "access": {"a": ""}},
            "must be a signed access proof of at most",
        ),
        (
            {"agent": "AGENT", "datasets": {"a": "AGENT"}, "aggregator": "AGENT", "access": {"a": "00" * 70000}},
            "must be a signed access proof of at most",
        ),
    ],
)
async def test_malformed_groups_are_400_with_the_reason(api_node: Any, body: dict[str, Any], detail: str) -> None:
    client, _, cluster = api_node
    body = {k: ({n: str(cluster.agent) if c == "AGENT" else c for n, c in v.items()} if isinstance(v, dict) else
                (str(cluster.agent) if v == "AGENT" else v)) for k, v in body.items()}  # fmt: skip
    response = await client.post("/v1/groups", json=body)
    answer = await response.json()
    assert response.status == 400 and answer["error"] == "bad_group" and detail in answer["detail"], answer
    missing = await client.get("/v1/groups/" + "0" * 32)
    assert missing.status == 404
