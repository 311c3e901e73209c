"""The OpenAPI 3.1 document served at /v1/openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_CID_PARAM = {"name": "cid", "in": "path", "required": True, "schema": {"type": "string"}}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _op(
    summary: str,
    ok: str,
    errors: tuple[int, ...] = (),
    *,
    cid: bool = False,
    job: bool = False,
    write: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": ok}, **{str(code): _ERROR for code in errors}},
    }
    if cid:
        operation["parameters"] = [_CID_PARAM]
    if job:
        operation["parameters"] = [_ID_PARAM]
    if write:  # the guards: a foreign Host/Origin is 403, a CSRF-prone content type 415
        operation["security"] = [{"bearer": []}]
        operation["responses"].setdefault("403", _ERROR)
        operation["responses"].setdefault("415", _ERROR)
    return operation


def document(version: str) -> dict[str, Any]:
    upload = _op(
        "Upload a file (application/octet-stream) or a directory (application/x-tar); returns its CID, pinned",
        "stored",
        (400, 401, 413, 415, 507),
        write=True,
    )
    upload["responses"]["201"] = upload["responses"].pop("200")
    upload["parameters"] = [
        {"name": "owner", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "store as a private dataset of this owner key (peer-ID form): locked until its policy"},
    ]  # fmt: skip
    upload["requestBody"] = {"content": {"application/octet-stream": _BINARY, "application/x-tar": _BINARY}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mycelnet node API", "version": version},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                }
            },
        },
        "paths": {
            "/v1/node": {"get": _op("This node: peer ID, version, addresses, region", "node")},
            "/v1/peers": {"get": _op("Peer table from signed announcements, with liveness", "peers")},
            "/v1/blobs": {"post": upload},
            "/v1/blobs/{cid}": {
                "get": _op(
                    "Download a file (a directory as tar), fetched from peers if not local; every block verified",
                    "bytes",
                    (400, 403, 404, 502),
                    cid=True,
                )
            },
            "/v1/blobs/{cid}/providers": {"get": _op("Peers holding the CID", "providers", (400, 403), cid=True)},
            "/v1/pins": {"get": _op("Pinned roots", "pins")},
            "/v1/policies": {
                "post": _op(
                    'Apply an owner-signed dataset policy or revocation, {"record": hex}; newer versions win',
                    "applied",
                    (400, 401, 409),
                    write=True,
                )
            },
            "/v1/policies/{cid}": {
                "get": _op(
                    "How this node holds a private dataset: owner, state, policy", "policy", (400, 404), cid=True
                )
            },
            "/v1/pins/{cid}": {
                "post": _op("Pin, fetching missing blocks", "pinned", (400, 401, 404, 507), cid=True, write=True),
                "delete": _op("Unpin", "unpinned", (401, 404), cid=True, write=True),
            },
            "/v1/agents": {
                "get": _op("Agents stored on this node: id, name, version, runtime", "agents"),
                "post": _op(
                    "Upload an agent directory (application/x-tar); validated, packed, returns its id",
                    "packed",
                    (400, 401, 413, 415, 507),
                    write=True,
                ),
            },
            "/v1/jobs": {
                "post": _op(
                    "Submit a job (JSON: agent, inputs, args, limits, redundancy, regions, needs_gpu, max_price, "
                    "deadline; job_id and payment for paid jobs); placed next to its data",
                    "accepted",
                    (400, 401, 409, 413, 507),
                    write=True,
                ),
                "get": {
                    **_op(
                        "Jobs this node requested, newest first (summaries: state, agent, times, last reason); "
                        "next_cursor pages on",
                        "jobs",
                        (400,),
                    ),
                    "parameters": [
                        {"name": "state", "in": "query", "schema": {"type": "string"}},
                        {"name": "agent", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "after", "in": "query", "schema": {"type": "string"}},
                    ],
                },
            },
            "/v1/jobs/{id}": {
                "get": _op(
                    "A job: state, every transition with its reason, results, receipts", "job", (404,), job=True
                ),
                "delete": _op("Cancel a job", "cancelled", (401, 404), job=True, write=True),
            },
            "/v1/jobs/{id}/placement": {
                "get": _op("Why each candidate was chosen or refused", "placement", (404,), job=True)
            },
            "/v1/jobs/{id}/receipt": {
                "get": _op("The executing node's signed receipt (dag-cbor)", "receipt", (404,), job=True)
            },
            "/v1/jobs/{id}/payment": {
                "post": _op(
                    "The client's signed JobPayments for a done job (JSON: payments), each forwarded to its executor",
                    "each executor's answer",
                    (400, 401, 404, 409, 413),
                    job=True,
                    write=True,
                )
            },
            "/v1/jobs/{id}/events": {
                "get": _op("State changes as server-sent events", "event stream", (404,), job=True)
            },
            "/v1/jobs/{id}/logs": {"get": _op("The agent's captured output, per node", "logs", (404,), job=True)},
            "/v1/ledger": {"get": _op("This node's settlement account, contract and claim counts", "ledger", (404,))},
            "/v1/ledger/claims": {
                "get": _op(
                    "Claims for paid jobs this node ran (?state=pending|submitted|settled|failed)", "claims", (400, 404)
                )
            },
            "/v1/openapi.json": {"get": _op("This document", "OpenAPI document")},
            "/metrics": {"get": _op("Prometheus metrics", "text exposition format")},
            "/v1/storage": {"get": _op("Block store use: blocks, bytes, quota, pins", "storage")},
            "/health": {"get": _op("Liveness: 200 whenever the process serves HTTP", "alive")},
            "/ready": {
                "get": {
                    **_op("Readiness: store open, libp2p up, chain reachable when configured", "ready"),
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready: failed checks"}},
                }
            },
            "/": {"get": _op("The web dashboard (read-only; HTML)", "dashboard page")},
            "/dashboard/{asset}": {
                "get": {
                    **_op("Dashboard assets (app.js, style.css)", "asset", (404,)),
                    "parameters": [{"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}],
                }
            },
        },
    }
