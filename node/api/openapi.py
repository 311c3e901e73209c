"""The OpenAPI 3.1 document served at /v1/openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_CID_PARAM = {"name": "cid", "in": "path", "required": True, "schema": {"type": "string"}}


def document(version: str) -> dict[str, Any]:
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
            "/v1/node": {
                "get": {
                    "summary": "This node: peer ID, version, addresses, region",
                    "responses": {"200": {"description": "node"}},
                }
            },
            "/v1/peers": {
                "get": {"summary": "Peer table with liveness", "responses": {"200": {"description": "peers"}}}
            },
            "/v1/blobs": {
                "post": {
                    "summary": "Upload a file (application/octet-stream) or a directory (application/x-tar); returns its CID, pinned",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "content": {
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                            "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
                        }
                    },
                    "responses": {
                        "201": {"description": "stored"},
                        "400": _ERROR,
                        "401": _ERROR,
                        "413": _ERROR,
                        "415": _ERROR,
                    },
                }
            },
            "/v1/blobs/{cid}": {
                "get": {
                    "summary": "Download a file (or a directory as tar), fetched from peers if not local; every block verified",
                    "parameters": [_CID_PARAM],
                    "responses": {"200": {"description": "bytes"}, "400": _ERROR, "404": _ERROR},
                }
            },
            "/v1/blobs/{cid}/providers": {
                "get": {
                    "summary": "Peers holding the CID",
                    "parameters": [_CID_PARAM],
                    "responses": {"200": {"description": "providers"}, "400": _ERROR},
                }
            },
            "/v1/pins": {"get": {"summary": "Pinned roots", "responses": {"200": {"description": "pins"}}}},
            "/v1/pins/{cid}": {
                "post": {
                    "summary": "Pin (fetching missing blocks)",
                    "security": [{"bearer": []}],
                    "parameters": [_CID_PARAM],
                    "responses": {"200": {"description": "pinned"}, "400": _ERROR},
                },
                "delete": {
                    "summary": "Unpin",
                    "security": [{"bearer": []}],
                    "parameters": [_CID_PARAM],
                    "responses": {"200": {"description": "unpinned"}, "404": _ERROR},
                },
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
    }
