"""Job routes: submit, status, placement explanation, receipt, payment, cancel, evidence of mismatches."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from contracts.authorization import JobPayment
from contracts.errors import AuthorizationError
from contracts.payment import Envelope, chain_job_id, commitment_of
from node.api.errors import ApiError
from node.api.groups import get_group, group_of, post_group
from node.api.services import job_service, node_of, started
from node.scheduler.events import Event
from node.scheduler.group import group_json, group_placement
from node.scheduler.job import Checks, JobError, JobRecord, JobSpec, JobState, queue_timeout_of
from node.scheduler.jobstore import JobStore, is_job_id
from storage import dagcbor
from storage.cid import CID

_SPEC_FIELDS = {
    "agent", "inputs", "args", "limits", "redundancy", "regions", "needs_gpu", "max_price", "deadline", "payment",
    "access",
}  # fmt: skip
_CHECK_FIELDS = {"spot_check", "trusted"}  # the requester's own checks: never sent to executors
_SUBMIT_FIELDS = _SPEC_FIELDS | _CHECK_FIELDS | {"job_id", "queue_timeout"}  # queue_timeout: requester only


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/jobs", post_job),
        web.get("/v1/jobs/{id}", get_job),
        web.get("/v1/jobs/{id}/placement", get_placement),
        web.get("/v1/jobs/{id}/receipt", get_receipt),
        web.post("/v1/jobs/{id}/payment", post_payment),
        web.delete("/v1/jobs/{id}", delete_job),
        web.get("/v1/jobs/{id}/events", get_events),
        web.get("/v1/jobs/{id}/logs", get_logs),
        web.get("/v1/evidence", get_evidence),
        web.post("/v1/groups", post_group),
        web.get("/v1/groups/{id}", get_group),
    ]


def _store(request: web.Request) -> JobStore:
    """The node's job store, once the job service that writes it has started (503 until then)."""
    return started(request, lambda node: node.jobs if node.job_service is not None else None)


def _job(request: web.Request) -> JobRecord:
    job = _store(request).get(request.match_info["id"])
    if job is None:
        raise ApiError(404, "not_found", f"no job {request.match_info['id']!r} on this node")
    return job


def spec_from_json(body: Any) -> JobSpec:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_job", "the body must be a JSON object")
    unknown = set(body) - _SUBMIT_FIELDS
    if unknown:
        raise ApiError(400, "bad_job", f"unknown field(s) {sorted(unknown)}; allowed: {sorted(_SUBMIT_FIELDS)}")
    record = {key: value for key, value in body.items() if key in _SPEC_FIELDS}
    if "payment" in record:
        try:
            record["payment"] = bytes.fromhex(str(record["payment"]).removeprefix("0x"))
        except ValueError:
            raise ApiError(400, "bad_job", "payment must be the hex of the signed commitment (see sdk)") from None
    if "access" in record:
        try:
            record["access"] = bytes.fromhex(str(record["access"]))
        except ValueError:
            raise ApiError(400, "bad_job", "access must be the hex of the client's signed access proof") from None
    if "agent" not in record:
        raise ApiError(400, "bad_job", "agent (the agent's CID) is required")
    record["agent"] = CID.parse(record["agent"])
    if not isinstance(record.get("inputs", {}), dict):
        raise ApiError(400, "bad_job", "inputs must map names to CIDs")
    record["inputs"] = {name: CID.parse(cid) for name, cid in record.get("inputs", {}).items()}
    try:
        return JobSpec.from_record(record)
    except JobError as exc:
        raise ApiError(400, "bad_job", str(exc)) from None


def checks_from_json(body: dict[str, Any]) -> Checks:
    """The client's spot-check settings (``spot_check``: a probability, ``trusted``: peer IDs)."""
    try:
        return Checks.requested(body.get("spot_check", 0.0), body.get("trusted", []))
    except JobError as exc:
        raise ApiError(400, "bad_job", str(exc)) from None


def corroboration_json(job: JobRecord) -> dict[str, Any]:
    """How the result was corroborated; while the job runs, what was asked for."""
    if job.corroboration:
        return job.corroboration
    return {"summary": f"{job.state.value}: not judged yet", "required": job.spec.redundancy,
            "spot_check": job.checks.to_record() if job.checks.spot_check else {}}  # fmt: skip


def job_json(job: JobRecord) -> dict[str, Any]:
    spec = job.spec
    return {
        "job_id": job.job_id,
        "state": job.state.value,
        "agent": str(spec.agent),
        "inputs": {name: str(cid) for name, cid in spec.inputs.items()},
        "redundancy": spec.redundancy,
        "regions": list(spec.regions),
        "results": job.results,
        "receipts": job.receipts,
        "result": next(iter(set(job.results.values())), None) if job.state.value == "done" else None,
        "transitions": [{"state": t.state.value, "at": t.at, "reason": t.reason} for t in job.transitions],
        "paid": spec.payment is not None,
        "corroboration": corroboration_json(job),
        "chain_job_id": "0x" + chain_job_id(job.job_id).hex(),
        "input_bytes_fetched": job.input_bytes_fetched,
    }


async def post_job(request: web.Request) -> web.Response:
    jobs = job_service(request)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    spec = spec_from_json(body)
    checks = checks_from_json(body)
    queue_timeout = None
    if body.get("queue_timeout") is not None:
        try:
            queue_timeout = queue_timeout_of(body["queue_timeout"])
        except JobError as exc:
            raise ApiError(400, "bad_job", str(exc)) from None
    job_id = body.get("job_id")
    if job_id is not None:
        if not isinstance(job_id, str) or not is_job_id(job_id):
            raise ApiError(400, "bad_job", "job_id must be 32 lowercase hex digits (or left out)")
        if _store(request).get(job_id) is not None:
            raise ApiError(409, "job_exists", f"job {job_id} already exists on this node")
    if spec.payment is not None:
        if job_id is None:
            raise ApiError(400, "bad_job", "a paid job names its job_id: the commitment is signed for it")
        try:
            commitment_of(spec.payment, job_id)
        except AuthorizationError as exc:
            raise ApiError(400, "bad_payment", str(exc)) from None
    job = jobs.submit(spec, job_id, checks, queue_timeout=queue_timeout)
    await jobs.persisted()  # accepted means written: the job survives a crash from here on
    return web.json_response({"job_id": job.job_id, "state": job.state.value}, status=201)


async def get_job(request: web.Request) -> web.Response:
    if group_of(request) is not None:  # a group job's id is a job id
        return await get_group(request)
    return web.json_response(job_json(_job(request)))


async def get_placement(request: web.Request) -> web.Response:
    if (group := group_of(request)) is not None:  # every run's placement, then the aggregator's
        return web.json_response(group_placement(job_service(request).groups, group))
    job = _job(request)
    return web.json_response(
        {"job_id": job.job_id, "candidates": job.placement, "input_bytes_fetched": job.input_bytes_fetched}
    )


async def get_receipt(request: web.Request) -> web.Response:
    """The signed receipt (dag-cbor) of the first node that returned the job's result."""
    service, job = node_of(request), _job(request)
    if not job.receipts:
        raise ApiError(404, "not_found", f"job {job.job_id} has no receipt yet (state {job.state.value})")
    peer = request.query.get("node") or sorted(job.receipts)[0]
    if peer not in job.receipts:
        raise ApiError(404, "not_found", f"node {peer} returned no receipt for job {job.job_id}")
    block = service.store.get(CID.parse(job.receipts[peer]))
    return web.Response(body=block, content_type="application/cbor", headers={"X-Node": peer})


async def post_payment(request: web.Request) -> web.Response:
    """The client's JobPayments for a finished job (JSON ``{"payments": [hex, ...]}``), each
    forwarded to the executor it names over /mycel/pay/1.0.0; answers what each node said."""
    from node.settlement.pay import forward

    service, job = node_of(request), _job(request)
    if job.state is not JobState.DONE:
        raise ApiError(409, "not_done", f"job {job.job_id} is {job.state.value}: a client pays only delivered work")
    try:
        body = await request.json()
        payments = [bytes.fromhex(str(item).removeprefix("0x")) for item in body["payments"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        raise ApiError(400, "bad_payment", 'the body is {"payments": [hex of each signed JobPayment]}') from None
    addresses = {row["peer_id"]: row["chain_address"] for row in service.peers.snapshot(set())}
    if service.settlement is not None:
        addresses[service.identity.peer_id] = service.settlement.address
    executors = {addresses.get(peer, ""): peer for peer in job.results if addresses.get(peer)}
    answers: dict[str, dict[str, Any]] = {}
    for raw in payments:
        try:
            envelope = Envelope.decode(raw, JobPayment)
        except AuthorizationError as exc:
            raise ApiError(400, "bad_payment", str(exc)) from None
        payment = envelope.signed.record
        assert isinstance(payment, JobPayment)
        if payment.job_id != chain_job_id(job.job_id):
            raise ApiError(400, "bad_payment", f"a payment is signed for another job, not {job.job_id}")
        peer = executors.get(payment.node)
        if peer is None:
            raise ApiError(400, "bad_payment", f"{payment.node} delivered no result for job {job.job_id}")
        if peer == service.identity.peer_id:
            answers[peer] = await service.payments.accept(dagcbor.encode({"job_id": job.job_id, "payment": raw}))
        else:
            answers[peer] = await forward(service.network, peer, job.job_id, raw)
    return web.json_response({"job_id": job.job_id, "nodes": answers})


async def delete_job(request: web.Request) -> web.Response:
    """Cancel a job: 200 with the job as GET shows it (a finished job is left as it ended), 404 if unknown."""
    jobs = job_service(request)
    if group_of(request) is not None:
        group = await jobs.groups.cancel(request.match_info["id"])
        assert group is not None
        return web.json_response(group_json(jobs.groups, group))
    job = await jobs.cancel(request.match_info["id"])
    if job is None:
        raise ApiError(404, "not_found", f"no job {request.match_info['id']!r} on this node")
    return web.json_response(job_json(job))


KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream


async def get_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every state change so far, then each new one, until the job ends.

    The history and the live events come from one subscription, so a job that moves (or
    ends) while the stream starts loses nothing; a comment every KEEPALIVE seconds finds a
    client that went away, so its subscription is removed even while the job is quiet.
    """
    job = _job(request)
    subscription = job_service(request).events.subscribe(job)
    try:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for past in subscription.history:
            await response.write(_sse(past))
        while True:
            try:
                event = await asyncio.wait_for(subscription.next(), KEEPALIVE)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if event is None:
                break
            await response.write(_sse(event))
        await response.write_eof()
    finally:
        subscription.close()
    return response


def _sse(event: Event) -> bytes:
    return f"event: {event.kind}\ndata: {json.dumps(event.data)}\n\n".encode()


async def get_logs(request: web.Request) -> web.Response:
    job = _job(request)
    return web.json_response({"job_id": job.job_id, "logs": job.logs})


MAX_EVIDENCE = 500


async def get_evidence(request: web.Request) -> web.Response:
    """Mismatches this node recorded as a requester, newest first: each job's results, the
    signed receipt (hex dag-cbor) behind each, and who was blamed. ``?peer=`` filters by blamed node."""
    store = _store(request)
    peer = request.query.get("peer") or None
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise ApiError(400, "bad_query", "limit must be an integer") from None
    if not 1 <= limit <= MAX_EVIDENCE:
        raise ApiError(400, "bad_query", f"limit must be from 1 to {MAX_EVIDENCE}")
    records = await asyncio.to_thread(store.evidence, limit, peer)
    rows = [{**r, "receipts": {p: bytes(b).hex() for p, b in r["receipts"].items()}} for r in records]
    return web.json_response({"evidence": rows})
