"""Trigger routes: deploy, list, inspect and remove triggers, read their receipts, invoke an agent.

``POST /v1/agents/{name}/invoke`` runs the ``invoke`` trigger of that name on the body's
``input`` (text) or ``data`` (base64) and answers with the agent's output and the signed
receipt, serverless-style. Receipts travel as base64 of their signed dag-cbor bytes, so a
client checks them offline (``agents.receipt.verify``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import replace
from typing import Any

from aiohttp import web

from agents import receipt as receipts
from agents.bundle import resolve
from agents.errors import AgentNotFound, BadAgentRef, ManifestError
from node.api.errors import ApiError
from node.api.services import node_of, trigger_service
from node.triggers.model import TriggerError, TriggerKind, TriggerSpec, parse_request
from node.triggers.placement import Holder, Placement, Role, choose, effective_regions, parse_regions
from node.triggers.service import Answer
from storage.errors import BlockNotFoundError, InvalidCIDError
from storage.peerid import public_key_from_peer_id

MAX_PAGE = 100
MAX_INVOKE_BYTES = 256 << 10  # an invocation's input (the JSON bound of the guards is larger)
MAX_AGENT_REF = 200


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/triggers", post_trigger),
        web.get("/v1/triggers", list_triggers),
        web.get("/v1/triggers/{name}", get_trigger),
        web.delete("/v1/triggers/{name}", delete_trigger),
        web.get("/v1/triggers/{name}/receipts", get_receipts),
        web.post("/v1/agents/{name}/invoke", post_invoke),
    ]


def _refused(exc: TriggerError) -> ApiError:
    return ApiError(exc.status, exc.code, str(exc))


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body is a JSON object")
    return body


async def post_trigger(request: web.Request) -> web.Response:
    """Deploy (or redeploy, keeping its cursor) a trigger for an agent this node holds; with
    ``on = PEER``, on that peer (a stage placed where its input stream is), which fetches the agent."""
    body = await _body(request)
    ref = body.get("agent")
    if not isinstance(ref, str) or not 0 < len(ref) <= MAX_AGENT_REF:
        raise ApiError(400, "bad_agent_ref", "agent is an agent id, NAME or NAME@VERSION deployed on this node")
    service = node_of(request)
    try:
        bundle = await asyncio.to_thread(resolve, service.store, ref)
    except (AgentNotFound, BlockNotFoundError):
        raise ApiError(
            404, "no_agent", f"no agent {ref} on this node (deploy it with 'mycel agent deploy DIR')"
        ) from None
    except (BadAgentRef, ManifestError) as exc:
        raise ApiError(400, "bad_agent_ref", str(exc)) from None
    place = body.pop("on", "")
    asked_regions = body.pop("regions", None)
    try:
        if not isinstance(place, str) or (place and not _is_peer(place)):
            raise TriggerError("bad_on", "on is the peer ID of the node to deploy on (its stream's holder)")
        regions = parse_regions(asked_regions)
        spec = parse_request(body, bundle.agent_id)
        if regions and spec.kind is not TriggerKind.STREAM:
            raise TriggerError("bad_regions", "regions place a stream trigger (it runs where its stream is held)")
        if regions and place:
            raise TriggerError("bad_on", "on names the node, regions lets this node choose one: send one of them")
        policy_regions: tuple[str, ...] = ()
        if spec.kind is TriggerKind.STREAM:  # the writer's policy bounds where the trigger may run
            holders = [held["peer"] for held in service.streams.holders(spec.stream)]
            policy = await service.streams.policy.find(spec.stream, holders, service.network)
            policy_regions = policy.policy.regions if policy is not None else ()
        effective = effective_regions(regions, policy_regions, spec.stream)
        spec = replace(spec, regions=effective)
        placement = None
        if effective and spec.standby:  # a standby stays here; it takes over only inside the regions
            _inside(service, "standby", spec.standby, effective)
        elif effective and place:  # the policy's regions, and a node named: it must be inside them
            _inside(service, "on", place, effective)
        elif effective:
            placement = (await _place(request, spec, effective)).by(service.identity.peer_id, policy_regions)
            place = placement.chosen.peer
            spec = replace(spec, placement=placement.json())
        if place and place != service.identity.peer_id:  # placed by its input: the peer fetches the agent from here
            answer = await trigger_service(request).deploy_on(place, spec)
        else:
            answer = await trigger_service(request).deploy(spec)
    except TriggerError as exc:
        raise _refused(exc) from None
    if placement is not None:
        said = answer.get("stream_role")  # what the chosen node says it is for the stream (absent: older node)
        if said in (Role.ORIGIN.value, Role.REPLICA.value) and placement.chosen.role is Role.HOLDER:
            placement = placement.confirmed(Role(said))
        answer = {**answer, "placement": placement.json()}
    return web.json_response(answer, status=201)


def _inside(service: Any, role: str, peer: str, regions: tuple[str, ...]) -> None:
    region = service.peers.region_of(peer)
    if peer != service.identity.peer_id and region not in regions:
        raise TriggerError(
            f"{role}_outside_regions", f"the {role} {peer} announces region {region}, not one of {', '.join(regions)}",
            409,
        )  # fmt: skip


async def _place(request: web.Request, spec: TriggerSpec, regions: tuple[str, ...]) -> Placement:
    """The holder of the stream trigger's stream inside ``regions`` to run it on (see node.triggers.placement)."""
    service = node_of(request)
    if spec.follower:  # it holds the stream and gets the trigger's state: in the regions too
        _inside(service, "follower", spec.follower, regions)
    own = service.identity.peer_id
    holders = []
    info = await asyncio.to_thread(service.streams.store.info, spec.stream)
    if info is not None:
        own_role = Role.ORIGIN if info.origin else Role.REPLICA
        holders.append(Holder(own, service.config.region, info.head_seq, own_role, here=True))
    for held in service.streams.holders(spec.stream):
        if held["peer"] != own:
            holders.append(Holder(held["peer"], service.peers.region_of(held["peer"]), int(held["seq"])))
    return choose(spec.stream, holders, regions)


def _is_peer(text: str) -> bool:
    try:
        public_key_from_peer_id(text)
    except (InvalidCIDError, ValueError):
        return False
    return True


async def list_triggers(request: web.Request) -> web.Response:
    triggers = trigger_service(request)
    return web.json_response({"triggers": [triggers.describe(name) for name in triggers.names()]})


async def get_trigger(request: web.Request) -> web.Response:
    try:
        return web.json_response(trigger_service(request).describe(request.match_info["name"]))
    except TriggerError as exc:
        raise _refused(exc) from None


async def delete_trigger(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        await trigger_service(request).remove(name)
    except TriggerError as exc:
        raise _refused(exc) from None
    return web.json_response({"removed": name})


def _query_int(request: web.Request, name: str, default: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 0 <= int(text) <= high:
        raise ApiError(400, f"bad_{name}", f"{name} must be an integer in [0, {high}]")
    return int(text)


def receipt_json(invocation: int, raw: bytes) -> dict[str, Any]:
    """One receipt as the API lists it: the signed bytes and, for reading, what its trigger part says."""
    record = receipts.verify(raw)
    run = record.trigger
    return {
        "invocation": invocation,
        "status": record.status,
        "result": str(record.result) if record.result else None,
        "first_seq": run.first_seq if run else 0,
        "last_seq": run.last_seq if run else 0,
        "state": str(run.state) if run and run.state else None,
        "data": base64.b64encode(raw).decode(),
    }


async def get_receipts(request: web.Request) -> web.Response:
    """The trigger's signed receipts after invocation ``after``, oldest first."""
    name = request.match_info["name"]
    after = _query_int(request, "after", 0, (1 << 63) - 1)
    limit = max(1, _query_int(request, "limit", MAX_PAGE, MAX_PAGE))
    try:
        found = await trigger_service(request).receipts(name, after, limit)
    except TriggerError as exc:
        raise _refused(exc) from None
    listed = await asyncio.to_thread(lambda: [receipt_json(n, raw) for n, raw in found])
    return web.json_response({"trigger": name, "receipts": listed})


def answer_json(answer: Answer) -> dict[str, Any]:
    text = None
    if answer.output is not None:
        try:
            text = answer.output.decode()
        except UnicodeDecodeError:
            text = None
    return {
        "status": answer.status,
        "output": base64.b64encode(answer.output).decode() if answer.output is not None else None,
        "text": text,
        "output_cid": str(answer.output_cid) if answer.output_cid else None,
        "result": str(answer.result) if answer.result else None,
        "state": str(answer.state) if answer.state else None,
        "receipt": base64.b64encode(answer.receipt).decode(),
        "receipt_cid": str(answer.receipt_cid),
        "ms": round(answer.seconds * 1000, 3),
    }


async def post_invoke(request: web.Request) -> web.Response:
    """Run the ``invoke`` trigger NAME on ``{"input": TEXT}`` or ``{"data": BASE64}``; answer with its output."""
    body = await _body(request)
    if set(body) - {"input", "data"} or len(body) > 1:
        raise ApiError(400, "bad_request", "send {'input': TEXT} or {'data': BASE64} (or {} for no input)")
    if isinstance(body.get("input"), str):
        data = body["input"].encode()
    elif isinstance(body.get("data"), str):
        try:
            data = base64.b64decode(body["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_data", "data is base64") from None
    elif body:
        raise ApiError(400, "bad_request", "input is a string, data a base64 string")
    else:
        data = b""
    if len(data) > MAX_INVOKE_BYTES:
        raise ApiError(413, "payload_too_large", f"an invocation's input is at most {MAX_INVOKE_BYTES} bytes")
    try:
        answer = await trigger_service(request).invoke(request.match_info["name"], data)
    except TriggerError as exc:
        raise _refused(exc) from None
    return web.json_response(answer_json(answer))
