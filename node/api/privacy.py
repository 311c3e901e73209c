"""HTTP side of private data: policy records, private uploads, and the gate each content route calls.

- ``POST /v1/policies`` takes ``{"record": hex}``, a signed policy or revocation (the
  dag-cbor envelope the SDK signs on the owner's machine), and applies it: the owner's, newer than what
  this node holds, else refused with the reason.
- ``GET /v1/policies/{cid}`` says how this node holds a dataset (locked, active, revoked,
  expired) and which policy applies.
- ``GET /v1/private`` lists the private datasets held here with their policy's terms (holders,
  expiry, approved agents and publishers, the cap) and, since start-up, how many grant holders
  ran jobs on each and what was refused, by reason (the dashboard's table; same read class as
  ``/v1/policies/{cid}``).
- ``POST /v1/blobs?owner=KEY`` stores the upload as a private dataset of ``KEY``: its
  blocks are indexed and the dataset locked (served to nobody) before the upload answers,
  and its root is never put on the DHT.
- Content routes call :func:`refuse_private` first: no HTTP client is a replica holder,
  so a private block is never sent over HTTP, and a private CID is never fetched for one.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.api.errors import ApiError
from node.api.services import node_of
from node.privacy.registry import DatasetState
from storage.cid import CID
from storage.privacy import schema
from storage.privacy.errors import PrivacyError, Refusal
from storage.privacy.policy import MAX_RECORD, SignedPolicy, SignedRevocation, parse

if TYPE_CHECKING:
    from node.service import NodeService


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/policies", post_policy),
        web.get("/v1/policies/{cid}", get_policy),
        web.get("/v1/private", list_private),
    ]


async def refuse_private(service: NodeService, cid: CID) -> None:
    """Raise 403 when ``cid`` is (in) a private dataset here: HTTP clients never receive private blocks."""
    datasets = await asyncio.to_thread(service.privacy.datasets_of, cid)
    if datasets:
        service.metrics.inc("private_blocks_refused_total")
        service.metrics.inc("private_refused_total", reason="http")
        service.privacy.stats.refused(datasets, "http")
        raise ApiError(
            403, "private_data", f"{cid} belongs to a private dataset: only replica holders its policy names get it"
        )


def private_owner(request: web.Request) -> str | None:
    """The ``owner`` of a private upload (checked before anything is stored), or None for a public one."""
    owner = request.query.get("owner")
    if owner is None:
        return None
    try:
        return schema.key(owner, "owner")
    except PrivacyError as exc:
        raise ApiError(400, "bad_owner", exc.detail) from None


async def stored(service: NodeService, root: CID, owner: str | None) -> None:
    """After an upload: lock and index a private dataset (off the loop), or announce a public one."""
    if owner is None:
        service.provide(root)
        return

    def lock() -> None:
        service.privacy.lock(root, owner, [cid for cid, _ in service.store.walk(root)])

    try:
        await asyncio.to_thread(lock)
    except PrivacyError as exc:
        raise ApiError(409, exc.reason.value, exc.detail) from None


async def post_policy(request: web.Request) -> web.Response:
    service = node_of(request)
    try:
        given = await request.json()
        body = (
            bytes.fromhex(given["record"]) if isinstance(given, dict) and isinstance(given.get("record"), str) else None
        )
    except (ValueError, UnicodeDecodeError):
        body = None
    if body is None:
        raise ApiError(400, "bad_policy", 'send {"record": "<hex of the signed policy or revocation>"}')
    if len(body) > MAX_RECORD:
        raise ApiError(413, "payload_too_large", f"a signed policy is at most {MAX_RECORD} bytes")
    try:
        record = await asyncio.to_thread(_apply, service, body)
    except PrivacyError as exc:
        status = 409 if exc.reason in (Refusal.STALE, Refusal.WRONG_OWNER, Refusal.PUBLIC_HERE) else 400
        raise ApiError(status, exc.reason.value, exc.detail) from None
    if isinstance(record, SignedPolicy):
        dataset, version, kind = record.policy.dataset, record.policy.version, "policy"
    else:
        dataset, version, kind = record.revocation.dataset, record.revocation.version, "revocation"
    return web.json_response(
        {"dataset": str(dataset), kind: str(record.cid), "version": version, "kind": kind}, status=201
    )


def _apply(service: NodeService, body: bytes) -> SignedPolicy | SignedRevocation:
    """Apply a record, unless it would turn content this node already holds as public into private.

    Public content may have been served, announced and copied: a policy cannot recall it, and
    a stranger's self-signed policy must not be able to stop this node serving public data.
    """
    record = parse(body, time.time())
    dataset = record.policy.dataset if isinstance(record, SignedPolicy) else record.revocation.dataset
    if service.privacy.state(dataset) is None and service.store.has(dataset):
        raise PrivacyError(Refusal.PUBLIC_HERE, f"{dataset} is held here as public content; put it with --private")
    return service.privacy.apply(body)


async def get_policy(request: web.Request) -> web.Response:
    service = node_of(request)
    dataset = CID.parse(request.match_info["cid"])
    state = await asyncio.to_thread(service.privacy.state, dataset)
    if state is None:
        raise ApiError(404, "not_found", f"{dataset} is not a private dataset on this node")
    return web.json_response(
        {
            "dataset": str(dataset),
            "owner": state.owner,
            "state": state.state,
            "version": state.version,
            "policy": None if state.policy is None else str(state.policy.cid),
        }
    )


async def list_private(request: web.Request) -> web.Response:
    service = node_of(request)
    states = await asyncio.to_thread(service.privacy.datasets)
    listed = [_dataset_json(service, state) for state in states]
    refused: dict[str, int] = {}
    for entry in listed:
        for reason, count in entry["refused"].items():
            refused[reason] = refused.get(reason, 0) + count
    return web.json_response({"datasets": listed, "refused": refused})


def _dataset_json(service: NodeService, state: DatasetState) -> dict[str, Any]:
    refused, grants = service.privacy.stats.of(state.dataset)
    entry: dict[str, Any] = {
        "dataset": str(state.dataset),
        "owner": state.owner,
        "state": state.state,
        "version": state.version,
        "policy": None,
        "holders": [],
        "expires": None,
        "agents": [],
        "publishers": [],
        "clients": 0,
        "max_result_bytes": 0,
        "grants": grants,
        "refused": refused,
    }
    if state.policy is not None:
        policy = state.policy.policy
        entry.update(
            policy=str(state.policy.cid),
            holders=list(policy.holders),
            expires=policy.expires,
            agents=[str(agent) for agent in policy.agents],
            publishers=list(policy.publishers),
            clients=len(policy.clients),
            max_result_bytes=policy.release.max_bytes,
        )
    return entry
