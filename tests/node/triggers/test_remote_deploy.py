"""A trigger deployed by a peer over /mycel/trigger (a pipeline stage placed by its input): the
peer's spec is checked as the API checks one, a trigger this node's API deployed is not replaced,
an agent that is not here and cannot be fetched is refused with its reason, and a malformed
deploy reply is refused by the asking node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from agents.bundle import pack
from node.triggers import service
from node.triggers.model import parse_request
from node.triggers.protocol import Deploy, Deployed, TriggerProtocolError, parse_deployed
from storage import dagcbor
from storage.cid import CID
from storage.peerid import peer_id_for
from tests.node.streams.helpers import Writer
from tests.node.triggers.agents import COUNTER, write_agent

PEER = peer_id_for(bytes(nacl.signing.SigningKey(b"P" * 32).verify_key))


async def test_a_peer_deploys_only_what_the_api_would_accept(
    node: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = pack(write_agent(tmp_path / "counter", "counter", COUNTER), node.store)
    writer = Writer()
    await node.streams.append(writer.stream, [writer.next(b"e1")])
    spec = {"name": "count", "agent": str(bundle.agent_id), "kind": "stream", "stream": writer.stream}

    async def ask(body: dict[str, Any]) -> Deployed:
        return parse_deployed(await node.triggers.handle_progress(PEER, Deploy(body).encode()))

    deployed = await ask(spec)
    assert deployed.status == 201 and deployed.view is not None and deployed.view["deployed_by"] == PEER
    assert deployed.view["stream_role"] == "origin"  # appended here
    assert (await ask(spec | {"every_n": 2})).status == 201  # the same peer may redeploy its own
    refusals = [
        (spec | {"agent": "not a cid"}, "bad_agent"),
        (spec | {"colour": "red"}, "bad_request"),
        (spec | {"stream": "st" + "c" * 52}, "stream_not_here"),
        (spec | {"name": "other", "agent": str(CID.for_block(b"absent"))}, "no_agent"),  # no exchange here
    ]
    for body, code in refusals:
        refused = await ask(body)
        assert refused.error == code and refused.view is None, refused
    await node.triggers.deploy(parse_request(spec | {"name": "mine"}, bundle.agent_id))  # via this node's API
    taken = await ask(spec | {"name": "mine"})
    assert taken.error == "name_taken" and taken.status == 409
    assert node.triggers.describe("mine")["deployed_by"] == ""
    monkeypatch.setattr(service, "MAX_PEER_TRIGGERS", 1)
    crowded = await ask(spec | {"name": "second"})
    assert crowded.error == "too_many_triggers" and crowded.status == 409


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"\xff"],
        [dagcbor.encode({"op": "deploy", "status": 201, "error": "", "detail": ""})],
        [dagcbor.encode({"op": "deploy", "status": 99, "error": "", "detail": "", "view": b"{}"})],
        [dagcbor.encode({"op": "deploy", "status": 201, "error": "", "detail": "", "view": b"[1]"})],
        [dagcbor.encode({"op": "deploy", "status": 201, "error": "", "detail": "", "view": b"x" * (17 << 10)})],
        [dagcbor.encode({"op": "deploy", "status": 400, "error": "e" * 65, "detail": "", "view": b""})],
    ],
)
def test_malformed_deploy_replies_are_refused(frames: list[bytes]) -> None:
    with pytest.raises(TriggerProtocolError):
        parse_deployed(frames)


async def test_a_deploy_on_something_not_a_peer_is_refused(node: Any, client: Any, tmp_path: Path) -> None:
    pack(write_agent(tmp_path / "counter", "counter", COUNTER), node.store)
    body = {"name": "t", "agent": "counter", "kind": "stream", "stream": "st" + "b" * 52, "on": "nope"}
    response = await client.post("/v1/triggers", json=body)
    assert response.status == 400 and (await response.json())["error"] == "bad_on"
