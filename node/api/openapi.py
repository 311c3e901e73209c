"""The OpenAPI 3.1 document served at /v1/openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_CID_PARAM = {"name": "cid", "in": "path", "required": True, "schema": {"type": "string"}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _op(
    summary: str, ok: str, errors: tuple[int, ...] = (), *, cid: bool = False, write: bool = False
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": ok}, **{str(code): _ERROR for code in errors}},
    }
    if cid:
        operation["parameters"] = [_CID_PARAM]
    if write:
        operation["security"] = [{"bearer": []}]
    return operation


def document(version: str) -> dict[str, Any]:
    upload = _op(
        "Upload a file (application/octet-stream) or a directory (application/x-tar); returns its CID, pinned",
        "stored",
        (400, 401, 413, 415),
        write=True,
    )
    upload["responses"]["201"] = upload["responses"].pop("200")
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
                    (400, 404, 502),
                    cid=True,
                )
            },
            "/v1/blobs/{cid}/providers": {"get": _op("Peers holding the CID", "providers", (400,), cid=True)},
            "/v1/pins": {"get": _op("Pinned roots", "pins")},
            "/v1/pins/{cid}": {
                "post": _op("Pin, fetching missing blocks", "pinned", (400, 401, 404), cid=True, write=True),
                "delete": _op("Unpin", "unpinned", (401, 404), cid=True, write=True),
            },
            "/v1/openapi.json": {"get": _op("This document", "OpenAPI document")},
            "/metrics": {"get": _op("Prometheus metrics", "text exposition format")},
        },
    }
