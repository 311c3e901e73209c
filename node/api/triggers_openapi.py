"""The trigger routes' part of the OpenAPI document (merged into it by node.api.openapi.document).

Bounds come from the validators' own constants, so a bound changed there changes here.
"""

from __future__ import annotations

from node.api.openapi import Schema, _json, _json_body, _obj, _op, _query, _ref
from node.api.triggers import MAX_PAGE
from node.triggers.model import MAX_EVERY_MS, MAX_EVERY_N
from node.triggers.placement import MAX_CANDIDATES
from storage.streamentry import NAME_PATTERN, STREAM_ID_PATTERN

_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer", "minimum": 0}
_NULLABLE_STR: Schema = {"type": ["string", "null"]}
_KIND: Schema = {"type": "string", "enum": ["stream", "schedule", "invoke"]}
_NAME: Schema = {"type": "string", "pattern": f"^{NAME_PATTERN}$"}
_STREAM: Schema = {"type": "string", "pattern": f"^({STREAM_ID_PATTERN})?$"}
_EVERY_N: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_EVERY_N, "description": "batch at N entries"}
_EVERY_MS: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_EVERY_MS, "description": "or when T ms old"}
_SCHEDULE: Schema = {
    "type": "string",
    "description": "'every 30s' (ms, s, m, h) or cron 'MIN HOUR DOM MON DOW' (UTC)",
}
_OUTPUT: Schema = {"type": "string", "description": "output stream name, signed by this node's trigger key"}
_SPEC: dict[str, Schema] = {
    "name": _NAME,
    "agent": {"type": "string", "description": "the agent id"},
    "kind": _KIND,
    "stream": _STREAM,
    "every_n": _EVERY_N,
    "every_ms": _EVERY_MS,
    "schedule": _SCHEDULE,
    "state": _NULLABLE_STR,
    "output": _OUTPUT,
    "standby": {"type": "string", "description": "the active node's peer ID while this node stands by"},
    "follower": {"type": "string", "description": "the standby's peer ID: its takeover fences this node"},
    "deployed_by": {"type": "string", "description": "the peer that deployed it here ('' this node's API)"},
    "regions": {
        "type": "array",
        "items": _STR,
        "description": "a stream trigger's effective regions (those asked for, within the stream's policy): it runs, "
        "and a standby takes it over, only on a node announcing one of them",
    },
}
_CURSOR: Schema = _obj(
    {
        "seq": {"type": "integer", "minimum": 0, "description": "the last stream entry consumed"},
        "invocations": _INT,
        "receipt": _NULLABLE_STR,
        "state": _NULLABLE_STR,
        "output_seq": _INT,
        "failures": _INT,
        "fenced": {
            "oneOf": [
                {"type": "null"},
                _obj({"by": _STR, "after_invocation": _INT, "void": _INT}),
            ],
            "description": "the follower took over after invocation N; later ones here are void",
        },
    }
)

_PLACEMENT: Schema = _obj(
    {
        "stream": _STREAM,
        "regions": {"type": "array", "items": _STR},
        "head_seq": {**_INT, "description": "the newest head any holder announced"},
        "peer_id": {**_STR, "description": "the holder chosen (this node or a peer)"},
        "reason": _STR,
        "candidates": {
            "type": "array",
            "items": _obj(
                {
                    "peer_id": _STR,
                    "region": {"type": ["string", "null"]},
                    "seq": _INT,
                    "role": {
                        "enum": ["origin", "replica", "holder"],
                        "description": "holder: not known (announced heads carry no role); this node's store, "
                        "and the chosen node's answer, say which",
                    },
                    "here": {"type": "boolean"},
                    "verdict": {"enum": ["chosen", "behind", "outside_regions"]},
                    "reason": _STR,
                }
            ),
            "maxItems": MAX_CANDIDATES,
        },
        "omitted": {**_INT, "description": "holders considered but not listed"},
        "policy_regions": {
            "type": "array",
            "items": _STR,
            "description": "the regions the stream's writer-signed policy allows (empty: any)",
        },
        "placed_by": {**_STR, "description": "the node that chose (the one the deploy went to)"},
    }
)

SCHEMAS: dict[str, Schema] = {
    "TriggerRequest": _obj(
        {
            "name": _NAME,
            "agent": {"type": "string", "maxLength": 200, "description": "agent id, NAME or NAME@VERSION held here"},
            "kind": _KIND,
            "stream": _STREAM,
            "every_n": _EVERY_N,
            "every_ms": _EVERY_MS,
            "schedule": _SCHEDULE,
            "state": {"type": "string", "description": "CID of the initial state"},
            "output": _OUTPUT,
            "standby": {"type": "string", "description": "stand by for the trigger running on this peer"},
            "follower": {"type": "string", "description": "the peer standing by: publish once it holds each receipt"},
            "on": {"type": "string", "description": "deploy on this peer (it holds the stream; it fetches the agent)"},
            "regions": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 64},
                "maxItems": 16,
                "description": "a stream trigger (instead of on): run it on the holder of its stream inside these "
                "announced regions nearest the head, the origin first; 409 no_holder_in_regions if none, "
                "409 region_forbidden_by_policy for a region the stream's policy does not allow",
            },
        },
        ["name", "agent", "kind"],
    ),
    "Trigger": _obj(
        {
            **_SPEC,
            "cursor": _CURSOR,
            "output_stream": {**_NULLABLE_STR, "description": "the output stream's id"},
            "running": {"type": "boolean"},
            "active": {"type": "boolean", "description": "runs here (false: standing by, or fenced)"},
            "old_active_fenced": {"type": "boolean", "description": "a standby that took over: the old node confirmed"},
            "stream_role": {"enum": ["origin", "replica"], "description": "a stream trigger: its stream's role here"},
            "placement": {
                "oneOf": [{"type": "null"}, _PLACEMENT],
                "description": "a deploy with regions (asked for, or the stream's policy): the holder chosen, and "
                "why; kept in the trigger's record",
            },
            "takeover": {
                **_obj({"allowed": {"type": "boolean"}, "reason": _NULLABLE_STR, "held_back": _NULLABLE_STR}),
                "description": "a standby: whether it may take over here (the trigger's regions and the stream's "
                "policy), and, while its active node is gone, why it waits",
            },
        },
        [*_SPEC, "cursor", "output_stream", "running", "active"],
    ),
    "TriggerList": _obj({"triggers": {"type": "array", "items": _ref("Trigger")}}),
    "TriggerRemoved": _obj({"removed": _STR}),
    "TriggerReceipts": _obj(
        {
            "trigger": _STR,
            "receipts": {
                "type": "array",
                "items": _obj(
                    {
                        "invocation": _INT,
                        "status": _STR,
                        "result": _NULLABLE_STR,
                        "first_seq": _INT,
                        "last_seq": _INT,
                        "state": _NULLABLE_STR,
                        "data": {"type": "string", "contentEncoding": "base64", "description": "the signed receipt"},
                    }
                ),
            },
        }
    ),
    "InvokeRequest": _obj(
        {
            "input": {"type": "string", "description": "text, the agent's /in/request"},
            "data": {"type": "string", "contentEncoding": "base64", "description": "or bytes, base64"},
        },
        [],
    ),
    "InvokeAnswer": _obj(
        {
            "status": _STR,
            "output": {"type": ["string", "null"], "contentEncoding": "base64", "description": "/out/output"},
            "text": {**_NULLABLE_STR, "description": "the output as text, when it is UTF-8"},
            "output_cid": _NULLABLE_STR,
            "result": _NULLABLE_STR,
            "state": _NULLABLE_STR,
            "receipt": {"type": "string", "contentEncoding": "base64", "description": "the signed receipt"},
            "receipt_cid": _STR,
            "ms": {"type": "number", "description": "the invocation's time on the node"},
        }
    ),
}

_NAME_PARAM: list[Schema] = [{"name": "name", "in": "path", "required": True, "schema": _STR}]


def paths() -> dict[str, dict[str, Schema]]:
    return {
        "/v1/triggers": {
            "post": _op(
                "deployTrigger",
                "Run an agent held here on new stream entries (batched), on a schedule, or on HTTP calls",
                _json("Trigger", "deployed (a redeploy keeps the cursor)"),
                (400, 404, 409, 413, 502, 503),
                status=201,
                body=_json_body("TriggerRequest"),
                write=True,
            ),
            "get": _op("listTriggers", "Triggers on this node, with their cursors", _json("TriggerList", "ok")),
        },
        "/v1/triggers/{name}": {
            "get": _op(
                "getTrigger", "A trigger and its cursor", _json("Trigger", "the trigger"), (404,), params=_NAME_PARAM
            ),
            "delete": _op(
                "removeTrigger",
                "Stop and remove a trigger",
                _json("TriggerRemoved", "removed"),
                (404,),
                params=_NAME_PARAM,
                write=True,
            ),
        },
        "/v1/triggers/{name}/receipts": {
            "get": _op(
                "getTriggerReceipts",
                "The signed receipt of each invocation: entries consumed (seq range, CIDs) and state left",
                _json("TriggerReceipts", "receipts"),
                (400, 404),
                params=[
                    *_NAME_PARAM,
                    _query("after", _INT, "invocations with a greater number"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "count"),
                ],
            )
        },
        "/v1/agents/{name}/invoke": {
            "post": _op(
                "invokeAgent",
                "Run the invoke trigger NAME on the input now (warm sandbox); answers with its output and receipt",
                _json("InvokeAnswer", "the agent's answer"),
                (400, 404, 409, 413, 503),
                params=_NAME_PARAM,
                body=_json_body("InvokeRequest"),
                write=True,
            )
        },
    }
