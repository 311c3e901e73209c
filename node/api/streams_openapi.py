"""The stream routes' part of the OpenAPI document (merged into it by node.api.openapi.document).

Bounds come from the validators' own constants (batch size, page size, retention, the
stream id pattern), so a bound changed there changes here.
"""

from __future__ import annotations

from node.api.openapi import Schema, _json, _json_body, _obj, _op, _query, _ref
from node.api.streams import MAX_PAGE
from node.streams.model import MAX_RETENTION
from node.streams.protocol import MAX_BATCH
from storage.streamentry import STREAM_ID_PATTERN
from storage.streampolicy import MAX_REGIONS

_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_NULLABLE_STR: Schema = {"type": ["string", "null"]}
_BOOL: Schema = {"type": "boolean"}
_RETENTION: Schema = _obj(
    {
        "entries": {"type": "integer", "minimum": 0, "maximum": MAX_RETENTION, "description": "keep the last N; 0 all"},
        "seconds": {"type": "integer", "minimum": 0, "maximum": MAX_RETENTION, "description": "keep T s; 0 forever"},
    },
    [],
)
_INFO: dict[str, Schema] = {
    "stream": _ref("StreamId"),
    "writer": {"type": "string", "description": "the writer's peer ID (its Ed25519 key)"},
    "name": _STR,
    "head_seq": {"type": "integer", "minimum": 0},
    "head_cid": _NULLABLE_STR,
    "first_seq": {"type": "integer", "minimum": 1, "description": "the oldest entry still held"},
    "forked": {"type": "boolean", "description": "the writer signed two histories; nothing more is appended"},
    "origin": {"type": "boolean", "description": "appended here (else replicated from source)"},
    "source": _STR,
    "retention": _obj({"entries": _INT, "seconds": _INT}),
    "updated": {"type": "number"},
    "snapshot": {**_NULLABLE_STR, "description": "CID of the newest snapshot of compacted entries (a CAR at /ipfs)"},
    "snapshot_seq": {"type": "integer", "minimum": 0, "description": "compacted entries reach up to this seq"},
}
_ENTRY: Schema = _obj(
    {
        "seq": _INT,
        "cid": _STR,
        "prev": _NULLABLE_STR,
        "time": {"type": "integer", "description": "the writer's clock, ms"},
        "payload_cid": _NULLABLE_STR,
        "size": {"type": ["integer", "null"], "description": "inline payload bytes"},
        "data": {"type": "string", "contentEncoding": "base64", "description": "the signed dag-cbor entry"},
    }
)

SCHEMAS: dict[str, Schema] = {
    "StreamId": {"type": "string", "pattern": f"^{STREAM_ID_PATTERN}$"},
    "StreamInfo": _obj(_INFO),
    "StreamDetail": _obj(
        {
            **_INFO,
            "forks": {"type": "integer", "description": "fork evidence records held"},
            "holders": {
                "type": "array",
                "items": _obj({"peer": _STR, "seq": _INT, "cid": _STR}),
                "description": "peers whose signed announcement carries this stream's head",
            },
            "policy": {"oneOf": [{"type": "null"}, _ref("StreamPolicy")], "description": "the writer's policy"},
        }
    ),
    "StreamPolicy": _obj(
        {
            "stream": _ref("StreamId"),
            "writer": _STR,
            "name": _STR,
            "version": {"type": "integer", "minimum": 1},
            "regions": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"},
                "maxItems": MAX_REGIONS,
                "description": "entries go only to nodes announcing one of these (self-declared labels); empty: any",
            },
            "regions_are_self_declared": {"type": "boolean"},
            "time": {"type": "integer", "description": "unix seconds, the writer's clock"},
            "cid": {"type": "string", "description": "the signed record's CID"},
        }
    ),
    "StreamPolicySet": _obj({"record": {"type": "string", "contentEncoding": "base64", "maxLength": 4096}}),
    "StreamPolicyAnswer": _obj({"stream": _ref("StreamId"), "policy": _ref("StreamPolicy"), "replaced": _BOOL}),
    "StreamPolicyRecord": _obj(
        {
            "stream": _ref("StreamId"),
            "policy": _ref("StreamPolicy"),
            "record": {"type": "string", "contentEncoding": "base64", "description": "the writer-signed record"},
        }
    ),
    "StreamHolders": _obj(
        {
            "stream": _STR,
            "here": {"type": "boolean", "description": "this node holds the stream (origin or replica)"},
            "holders": {
                "type": "array",
                "items": _obj({"peer": _STR, "seq": _INT, "cid": _STR}),
                "description": "peers whose signed announcement carries this stream's head",
            },
        }
    ),
    "StreamList": _obj({"streams": {"type": "array", "items": _ref("StreamInfo")}}),
    "StreamAppend": _obj(
        {
            "entries": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": {"type": "string", "contentEncoding": "base64"},
                "description": "signed entries (base64 dag-cbor), in seq order; all land or none",
            },
            "retention": _RETENTION,
        },
        ["entries"],
    ),
    "StreamAppended": _obj({**_INFO, "appended": _INT}),
    "StreamEntries": _obj(
        {
            "stream": _ref("StreamId"),
            "head_seq": _INT,
            "first_seq": _INT,
            "entries": {"type": "array", "items": _ENTRY},
            "snapshot": {
                "oneOf": [{"type": "null"}, _obj({"cid": _STR, "first_seq": _INT, "last_seq": _INT})],
                "description": "after is below the live log: the snapshot holding the next entry (GET /ipfs/CID)",
            },
        }
    ),
    "StreamSubscribe": _obj({"peer": {"type": "string", "description": "the holder's peer ID"}}),
    "StreamSubscribed": _obj({"stream": _ref("StreamId"), "source": _STR, "head_seq": _INT}),
}

_ID: list[Schema] = [{"name": "id", "in": "path", "required": True, "schema": _ref("StreamId")}]
_AFTER = {"type": "integer", "minimum": 0}


def paths() -> dict[str, dict[str, Schema]]:
    return {
        "/v1/streams": {"get": _op("listStreams", "Streams held here (origin or replica)", _json("StreamList", "ok"))},
        "/v1/streams/{id}": {
            "get": _op(
                "getStream",
                "A stream: head, retention, fork mark, and the peers announcing its head",
                _json("StreamDetail", "the stream"),
                (400, 404),
                params=_ID,
            )
        },
        "/v1/streams/{id}/holders": {
            "get": _op(
                "getStreamHolders",
                "Where a stream is: whether this node holds it, and the peers announcing its head",
                _json("StreamHolders", "where the stream is"),
                (400,),
                params=_ID,
            )
        },
        "/v1/streams/{id}/entries": {
            "post": _op(
                "appendStreamEntries",
                "Append writer-signed entries; refused (400 malformed, bad_signature, oversize, wrong_stream; "
                "409 gap, replay, fork, forked) with the stream unchanged",
                _json("StreamAppended", "appended"),
                (400, 409, 413, 507),
                status=201,
                params=_ID,
                body=_json_body("StreamAppend"),
                write=True,
            ),
            "get": _op(
                "getStreamEntries",
                "Entries after a seq, oldest first, as signed bytes (verify them offline)",
                _json("StreamEntries", "entries"),
                (400, 404),
                params=[
                    *_ID,
                    _query("after", _AFTER, "entries with a greater seq"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}, "count"),
                ],
            ),
        },
        "/v1/streams/{id}/tail": {
            "get": _op(
                "tailStream",
                "Server-sent 'entry' events: those after ?after (default: the head), then each new one",
                {"description": "event stream", "content": {"text/event-stream": {"schema": _STR}}},
                (400, 404, 503),
                params=[*_ID, _query("after", _AFTER, "start after this seq")],
            )
        },
        "/v1/streams/{id}/policy": {
            "post": _op(
                "setStreamPolicy",
                "Set the stream's data policy, signed by its writer (newer versions replace older ones): its "
                "entries go only to nodes announcing its regions. 400 malformed|forged, 403 wrong_owner, 409 stale",
                _json("StreamPolicyAnswer", "kept"),
                (400, 403, 409, 413),
                status=201,
                params=_ID,
                body=_json_body("StreamPolicySet"),
                write=True,
            ),
            "get": _op(
                "getStreamPolicy",
                "The stream's policy held here, with the signed record to verify offline",
                _json("StreamPolicyRecord", "the policy"),
                (400, 404),
                params=_ID,
            ),
        },
        "/v1/streams/{id}/subscribe": {
            "post": _op(
                "subscribeStream",
                "Replicate a stream from its holder: pull and verify now, then keep pulling",
                _json("StreamSubscribed", "subscribed"),
                (400, 403, 409, 413, 502),
                params=_ID,
                body=_json_body("StreamSubscribe"),
                write=True,
            )
        },
    }
