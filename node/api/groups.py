"""Group (federated) job routes: submit one agent over several datasets plus an aggregator.

A group id is a job id: ``GET /v1/jobs/{id}``, ``.../placement`` and ``DELETE /v1/jobs/{id}``
answer for a group too (node/api/jobs.py asks :func:`group_of` first), so ``mycel job
status|explain|cancel`` work on it unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from node.api.errors import ApiError
from node.api.services import job_service, node_of
from node.errors import NodeError
from node.scheduler.group import GroupRecord, GroupService, GroupSpec, group_json
from node.scheduler.job import JobError
from node.scheduler.jobstore import is_job_id
from storage.cid import CID


def _groups(request: web.Request) -> GroupService:
    return job_service(request).groups


def group_of(request: web.Request) -> GroupRecord | None:
    """The group whose id is in the path, if it names one (None: a plain job, or nothing)."""
    jobs = node_of(request).job_service
    if jobs is None:
        return None
    return jobs.groups.get(request.match_info["id"])


def _cids(value: Any, what: str) -> Any:
    if not isinstance(value, dict):
        raise ApiError(400, "bad_group", f"{what} must map names to CIDs")
    return {name: _cid(cid, what) for name, cid in value.items()}


def _cid(value: Any, what: str) -> CID:
    if not isinstance(value, str):
        raise ApiError(400, "bad_group", f"{what}: a CID is a string")
    try:
        return CID.parse(value)
    except (NodeError, ValueError) as exc:
        raise ApiError(400, "bad_group", f"{what}: {exc}") from None


def _proofs(value: Any) -> dict[str, bytes]:
    """``access``: dataset name -> hex of the client's signed access proof for that dataset's run."""
    if not isinstance(value, dict) or not all(isinstance(proof, str) for proof in value.values()):
        raise ApiError(400, "bad_group", "access must map dataset names to hex access proofs")
    try:
        return {name: bytes.fromhex(proof) for name, proof in value.items()}
    except ValueError:
        raise ApiError(400, "bad_group", "access: each proof is the hex of a signed access proof") from None


def group_spec_from_json(body: Any) -> GroupSpec:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_group", "the body must be a JSON object")
    record = {key: value for key, value in body.items() if key != "job_id"}
    for key in ("agent", "aggregator"):
        if key not in record:
            raise ApiError(400, "bad_group", f"{key} (an agent's CID) is required")
        record[key] = _cid(record[key], key)
    if "datasets" not in record:
        raise ApiError(400, "bad_group", "datasets (names to dataset CIDs) is required")
    record["datasets"] = _cids(record["datasets"], "datasets")
    if "shared" in record:
        record["shared"] = _cids(record["shared"], "shared")
    if "access" in record:
        record["access"] = _proofs(record["access"])
    try:
        return GroupSpec.from_record(record)
    except JobError as exc:
        raise ApiError(400, "bad_group", str(exc)) from None


async def post_group(request: web.Request) -> web.Response:
    groups = _groups(request)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    spec = group_spec_from_json(body)
    group_id = body.get("job_id")
    if group_id is not None:
        if not isinstance(group_id, str) or not is_job_id(group_id):
            raise ApiError(400, "bad_group", "job_id must be 32 lowercase hex digits (or left out)")
        if groups.get(group_id) is not None or groups.jobs.jobs.get(group_id) is not None:
            raise ApiError(409, "job_exists", f"job {group_id} already exists on this node")
    group = groups.submit(spec, group_id)
    return web.json_response({"job_id": group.group_id, "state": group.state.value}, status=201)


async def get_group(request: web.Request) -> web.Response:
    groups = _groups(request)
    group = groups.get(request.match_info["id"])
    if group is None:
        raise ApiError(404, "not_found", f"no group job {request.match_info['id']!r} on this node")
    return web.json_response(group_json(groups, group))
