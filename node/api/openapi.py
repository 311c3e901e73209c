"""The OpenAPI 3.1 document served at /v1/openapi.json (and read by the /docs page).

Request schemas state what the handlers really enforce, with the same bounds: they are built
from the validators' own constants (node.scheduler.job, agents.manifest), so a bound changed
there changes here. Response schemas are checked against real answers by
tests/node/test_openapi.py. Every operation lists the statuses its handler and the
middlewares produce; any error body is the envelope ``{"error": ..., "detail": ...}``.
"""

from __future__ import annotations

from typing import Any

from agents.manifest import _LIMIT_CAPS  # the caps check_limits enforces on a job's limit overrides
from node.api.guards import MAX_JSON_BYTES, MAX_JSON_DEPTH
from node.scheduler.job import (
    MAX_ARGS,
    MAX_INPUTS,
    MAX_PAYMENT,
    MAX_QUEUE_TIMEOUT,
    MAX_REGIONS,
    MAX_TEXT,
    MAX_TRUSTED,
    JobState,
)
from node.scheduler.jobstore import MAX_PAGE
from storage.dagscope import MAX_PATH_SEGMENTS

Schema = dict[str, Any]

JOB_ID_PATTERN = "^[0-9a-f]{32}$"
HEX_PATTERN = "^(0x)?([0-9a-fA-F]{2})*$"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Schema], required: list[str] | None = None, *, closed: bool = True) -> Schema:
    """An object schema; ``required`` defaults to every property (what the handler always sends)."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _map(values: Schema) -> Schema:
    return {"type": "object", "additionalProperties": values}


_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_NUM: Schema = {"type": "number"}
_BOOL: Schema = {"type": "boolean"}
_STRINGS: Schema = {"type": "array", "items": _STR}
_JOB_STATES = [state.value for state in JobState]

SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": _STR, "detail": _STR}),
    "CID": {"type": "string", "minLength": 1, "description": "a CID in any multibase (base32 'b…' as answered)"},
    "JobId": {"type": "string", "pattern": JOB_ID_PATTERN},
    "JobState": {"type": "string", "enum": _JOB_STATES},
    "JobRequest": {
        **_obj(
            {
                "agent": _ref("CID"),
                "inputs": {
                    "type": "object",
                    "maxProperties": MAX_INPUTS,
                    "propertyNames": {"minLength": 1, "pattern": "^[^/]+$"},
                    "additionalProperties": _ref("CID"),
                    "description": "input name (no '/') -> CID, mounted under that name",
                },
                "args": {"type": "array", "maxItems": MAX_ARGS, "items": {"type": "string", "maxLength": MAX_TEXT}},
                "limits": _obj(
                    {name: {"type": "integer", "minimum": 1, "maximum": cap} for name, cap in _LIMIT_CAPS.items()},
                    [],
                ),
                "redundancy": {"type": "integer", "minimum": 1, "maximum": 16, "default": 1},
                "regions": {
                    "type": "array",
                    "maxItems": MAX_REGIONS,
                    "items": {"type": "string", "minLength": 1, "maxLength": 64},
                },
                "needs_gpu": {"type": "boolean", "default": False},
                "max_price": {"type": ["integer", "null"], "minimum": 0, "description": "wei"},
                "deadline": {"type": ["number", "null"], "description": "unix time"},
                "payment": {
                    "type": "string",
                    "pattern": HEX_PATTERN,
                    "maxLength": 2 * MAX_PAYMENT + 2,
                    "description": "hex of the client's signed commitment (the SDK makes it); needs job_id",
                },
                "spot_check": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "default": 0,
                    "description": "probability of re-running the job on a trusted node; needs trusted",
                },
                "trusted": {
                    "type": "array",
                    "maxItems": MAX_TRUSTED,
                    "items": {"type": "string", "pattern": "^[1-9A-HJ-NP-Za-km-z]+$"},
                    "description": "peer IDs of nodes this client trusts to spot-check (kept by the requester)",
                },
                "access": {
                    "type": "string",
                    "pattern": "^([0-9a-fA-F]{2})*$",
                    "description": "hex of the client's signed access proof for private inputs (the SDK makes it)",
                },
                "queue_timeout": {
                    "type": ["number", "null"],
                    "exclusiveMinimum": 0,
                    "maximum": MAX_QUEUE_TIMEOUT,
                    "description": "seconds the job may wait in state queued for a node with room before it "
                    "fails (null: the node's jobs.queue_timeout_seconds)",
                },
                "job_id": {
                    "oneOf": [_ref("JobId"), {"type": "null"}],
                    "description": "chosen by the client (a paid job's commitment is signed for it); 409 if taken",
                },
            },
            ["agent"],
        ),
        "dependentRequired": {"payment": ["job_id"]},
        "example": {"agent": "bafy…", "inputs": {"in": "bafy…"}, "args": []},
    },
    "JobAccepted": _obj({"job_id": _ref("JobId"), "state": _ref("JobState")}),
    "Transition": _obj({"state": _ref("JobState"), "at": _NUM, "reason": _STR}),
    "Job": _obj(
        {
            "job_id": _ref("JobId"),
            "state": _ref("JobState"),
            "agent": _ref("CID"),
            "inputs": _map(_STR),
            "redundancy": {"type": "integer", "minimum": 1, "maximum": 16},
            "regions": _STRINGS,
            "results": {**_map(_STR), "description": "executing node's peer ID -> result CID"},
            "receipts": {**_map(_STR), "description": "executing node's peer ID -> CID of its signed receipt"},
            "result": {"type": ["string", "null"], "description": "the agreed result once done"},
            "transitions": {"type": "array", "items": _ref("Transition")},
            "paid": _BOOL,
            "corroboration": _ref("Corroboration"),
            "chain_job_id": {"type": "string", "pattern": "^0x[0-9a-f]{64}$"},
            "input_bytes_fetched": _ref("InputBytesFetched"),
        }
    ),
    "InputBytesFetched": {
        **_map({"type": "integer", "minimum": 0}),
        "description": "executing node's peer ID -> input bytes it fetched from the network to run the job, "
        "as it measured them (0: it held every input; a node that did not say, or a job over private data, "
        "is absent)",
    },
    "Corroboration": _obj(
        {
            "summary": {"type": "string", "description": "e.g. '2 distinct operators agreed of 2 run'"},
            "required": {"type": "integer", "minimum": 1},
            "agreed": {"type": "array", "items": _STR, "description": "the nodes whose result is the job's"},
            "ran": _STRINGS,
            "disagreed": {**_map(_STR), "description": "node -> why it was judged wrong (never paid)"},
            "operators": {**_map(_STR), "description": "node -> the operator it counts as"},
            "spot_check": {"type": "object"},
            "evidence": {"type": "array", "items": _STR, "description": "ids in GET /v1/evidence"},
        },
        ["summary", "required"],
    ),
    "JobSummary": _obj(
        {
            "job_id": _ref("JobId"),
            "state": _ref("JobState"),
            "agent": _STR,
            "created": _NUM,
            "updated": _NUM,
            "reason": _STR,
        }
    ),
    "JobList": _obj(
        {"jobs": {"type": "array", "items": _ref("JobSummary")}, "next_cursor": {"type": ["string", "null"]}}
    ),
    "GroupRequest": _obj(
        {
            "agent": _ref("CID"),
            "datasets": {
                **_map(_ref("CID")),
                "minProperties": 1,
                "maxProperties": 64,
                "description": "name -> dataset CID; each run goes to that dataset's holder",
            },
            "aggregator": _ref("CID"),
            "input": {"type": "string", "default": "data", "description": "where each run sees its dataset"},
            "shared": {**_map(_ref("CID")), "maxProperties": 16, "description": "inputs every run gets"},
            "args": _STRINGS,
            "aggregator_args": _STRINGS,
            "limits": _map(_INT),
            "regions": _STRINGS,
            "access": {
                **_map(_STR),
                "description": "dataset name -> hex of the client's signed access proof for that run (private data)",
            },
            "dp": {
                **_obj({"clip": _NUM, "noise_multiplier": _NUM, "delta": _NUM}, ["clip", "noise_multiplier"]),
                "description": "each run's update clipped to clip (L2) with Gaussian noise noise_multiplier * clip",
            },
            "job_id": _ref("JobId"),
        },
        ["agent", "datasets", "aggregator"],
    ),
    "GroupRun": _obj(
        {
            "job_id": _ref("JobId"),
            "state": _ref("JobState"),
            "node": {"type": ["string", "null"]},
            "result": {"type": ["string", "null"]},
            "receipt": {"type": ["string", "null"]},
            "reason": _STR,
            "dataset": _STR,
            "dp": {
                **_obj({"clip": _NUM, "noise_multiplier": _NUM, "delta": _NUM, "rho": _NUM, "epsilon": _NUM}),
                "description": "the DP terms the node gave this run and the loss they spend (zCDP rho, epsilon)",
            },
        },
        ["job_id", "state", "node", "result", "receipt"],
    ),
    "Group": _obj(
        {
            "job_id": _ref("JobId"),
            "group": {"const": True},
            "state": {"type": "string", "enum": ["queued", "running", "aggregating", "done", "failed", "cancelled"]},
            "reason": _STR,
            "agent": _ref("CID"),
            "aggregator": _ref("CID"),
            "datasets": _map(_STR),
            "runs": {**_map(_ref("GroupRun")), "description": "dataset name -> its run"},
            "aggregate": {"oneOf": [_ref("GroupRun"), {"type": "null"}]},
            "result": {"type": ["string", "null"]},
            "transitions": {"type": "array", "items": _obj({"state": _STR, "at": _NUM, "reason": _STR})},
        }
    ),
    "GroupPlacement": _obj(
        {
            "job_id": _ref("JobId"),
            "group": {"const": True},
            "runs": {
                "type": "array",
                "items": _obj(
                    {
                        "dataset": _STR,
                        "job_id": _ref("JobId"),
                        "state": _ref("JobState"),
                        "candidates": {"type": "array", "items": {"type": "object"}},
                    }
                ),
            },
            "candidates": {"type": "array", "items": {"type": "object"}, "description": "the aggregator's"},
        }
    ),
    "Placement": _obj(
        {
            "job_id": _ref("JobId"),
            "candidates": {
                "type": "array",
                "items": _obj(
                    {
                        "peer_id": _STR,
                        "verdict": {"type": "string", "enum": ["chosen", "standby", "refused"]},
                        "reason": _STR,
                        "rank": _INT,
                        "score": _NUM,
                        "moved_bytes": {**_INT, "description": "input bytes predicted to move there"},
                        "predicted_moved_bytes": {
                            **_INT,
                            "description": "present when the chosen node's offer said it holds other bytes "
                            "than the view predicted: moved_bytes is then by its offer",
                        },
                    },
                    ["peer_id", "verdict", "reason"],
                    closed=False,  # the stake columns come and go with settlement
                ),
            },
            "input_bytes_fetched": _ref("InputBytesFetched"),
        }
    ),
    "Logs": _obj({"job_id": _ref("JobId"), "logs": {**_map(_STR), "description": "peer ID -> captured output"}}),
    "PaymentRequest": {
        **_obj({"payments": {"type": "array", "items": {"type": "string", "pattern": HEX_PATTERN}}}),
        "description": "hex of each signed JobPayment (the SDK makes them)",
        "example": {"payments": ["0x…"]},
    },
    "PaymentAnswers": _obj(
        {"job_id": _ref("JobId"), "nodes": {**_map({"type": "object"}), "description": "peer ID -> its answer"}}
    ),
    "LedgerSummary": _obj(
        {
            "address": _STR,
            "contract": _STR,
            "rpc_url": _STR,
            "chain_id": _INT,
            "registered": _BOOL,
            "price": {"type": "integer", "minimum": 0},
            "claims": _map(_INT),
            "refused_clients": {"type": "array", "items": {"type": "object"}},
        }
    ),
    "Claim": _obj(
        {
            "job_id": _ref("JobId"),
            "chain_job_id": _STR,
            "client": _STR,
            "amount": {"type": "integer", "minimum": 0},
            "state": {"type": "string", "enum": ["pending", "submitted", "settled", "failed"]},
            "tx_hash": {"type": ["string", "null"]},
            "block": {"type": ["integer", "null"]},
            "gas": {"type": ["integer", "null"]},
            "attempts": _INT,
            "error": {"type": ["string", "null"]},
            "created_at": _NUM,
            "updated_at": _NUM,
        }
    ),
    "Claims": _obj({"address": _STR, "claims": {"type": "array", "items": _ref("Claim")}}),
    "Evidence": _obj(
        {
            "evidence": {
                "type": "array",
                "items": _obj(
                    {
                        "evidence_id": _ref("CID"),
                        "job_id": _STR,
                        "agent": _STR,
                        "at": {"type": "number"},
                        "results": _map(_STR),
                        "receipts": _map({"type": "string", "pattern": "^[0-9a-f]*$", "description": "dag-cbor, hex"}),
                        "blamed": {"type": "array", "items": _STR},
                        "referee": _STR,
                    }
                ),
            }
        }
    ),
    "PolicyRecord": {
        **_obj({"record": {"type": "string", "pattern": "^[0-9a-fA-F]*$", "description": "hex, dag-cbor"}}),
        "description": "an owner-signed dataset policy or revocation (the SDK and `mycel data` make it)",
    },
    "PolicyApplied": _obj(
        {
            "dataset": _ref("CID"),
            "policy": _ref("CID"),
            "revocation": _ref("CID"),
            "version": _INT,
            "kind": {"type": "string", "enum": ["policy", "revocation"]},
        },
        ["dataset", "version", "kind"],
    ),
    "PolicyState": _obj(
        {
            "dataset": _ref("CID"),
            "owner": _STR,
            "state": _STR,
            "version": _INT,
            "policy": {"type": ["string", "null"], "description": "CID of the policy in force"},
        }
    ),
    "PrivateDataset": _obj(
        {
            "dataset": _ref("CID"),
            "owner": _STR,
            "state": {"type": "string", "enum": ["locked", "active", "revoked", "expired"]},
            "version": _INT,
            "policy": {"type": ["string", "null"], "description": "CID of the policy in force"},
            "holders": {**_STRINGS, "description": "peer IDs the policy names as replica holders"},
            "expires": {"type": ["integer", "null"], "description": "unix seconds"},
            "agents": {**_STRINGS, "description": "approved agent CIDs"},
            "publishers": {**_STRINGS, "description": "publisher keys whose signed agents are approved"},
            "clients": {**_INT, "description": "client keys the policy lists"},
            "max_result_bytes": _INT,
            "grants": {**_INT, "description": "distinct grant holders that ran jobs here since start-up"},
            "refused": {**_map(_INT), "description": "refusals since start-up, by reason"},
        }
    ),
    "PrivateDatasets": _obj(
        {
            "datasets": {"type": "array", "items": _ref("PrivateDataset")},
            "refused": {**_map(_INT), "description": "all datasets' refusals since start-up, by reason"},
        }
    ),
    "Reputation": _obj(
        {
            "half_life_seconds": {**_NUM, "description": "an event weighs half as much after this long"},
            "exclude_at": {**_NUM, "description": "decayed wrong results at which a peer is refused"},
            "peers": {
                "type": "array",
                "items": _obj(
                    {
                        "peer_id": _STR,
                        "rank": {"type": "integer", "minimum": 1},
                        "counts": {**_map(_INT), "description": "observed outcome -> how many are kept"},
                        "weights": {**_map(_NUM), "description": "the same, decayed to now"},
                        "penalty_seconds": {**_NUM, "description": "added to the peer's placement cost"},
                        "excluded": _BOOL,
                        "last": {"type": ["number", "null"], "description": "when the newest was seen"},
                    }
                ),
            },
        }
    ),
    "NodeConfig": _obj(
        {
            "peer_id": _STR,
            "pid": _INT,
            "config_file": {"type": ["string", "null"], "description": "the node.toml read, if any"},
            "data_dir": _STR,
            "region": _STR,
            "listen": {"type": "array", "items": _STR},
            "addrs": {"type": "array", "items": _STR},
            "bootstrap": {"type": "array", "items": _STR},
            "api": _obj({"url": _STR, "listen": _STR, "token_set": {"type": "boolean"}}, closed=False),
            "price_per_cpu_second": _INT,
            "settlement": {"type": "object", "description": "on/off, account, balance, contract"},
            "store": _obj({"blocks": _INT, "bytes": _INT, "quota": {"type": ["integer", "null"]}, "pins": _INT}),
            "settings": {"type": "object", "description": "every section and key, secrets redacted"},
        },
        closed=False,
    ),
    "Node": _obj(
        {
            "peer_id": _STR,
            "version": _STR,
            "api_version": _STR,
            "addrs": _STRINGS,
            "region": _STR,
            "api_url": _STR,
            "bulk_url": {**_STR, "description": "bulk CAR base URL for peers (libp2p-PeerID auth or a ticket)"},
            "runtimes": _STRINGS,
            "sandbox": {**_map(_STR), "description": "python sandbox layer -> its state on this host"},
            "chain": {"oneOf": [_ref("LedgerSummary"), {"type": "null"}]},
            "nat": {
                **_obj({}, closed=False),
                "description": "reachability (AutoNAT), relayed_addrs, relay, connections: peer -> direct|relayed",
            },
        }
    ),
    "Peer": _obj(
        {
            "peer_id": _STR,
            "addrs": _STRINGS,
            "region": _STR,
            "runtimes": _STRINGS,
            "capacity": _obj(
                {
                    "cpu_cores": {"type": "integer", "minimum": 1},
                    "memory_mib": _INT,
                    "gpus": _INT,
                    "queue": {**_INT, "description": "jobs it lets wait for a free core, beyond one per core"},
                },
                ["cpu_cores"],
            ),
            "load": _obj({"running_jobs": {"type": "integer", "minimum": 0}}),
            "price": {"type": "integer", "minimum": 0},
            "chain_address": _STR,
            "operator": {"type": "string", "description": "the operator key it proved (empty: its own operator)"},
            "env": {"type": "string", "description": "hash of its agent environment (empty: not announced)"},
            "seq": _INT,
            "last_seen_seconds_ago": _NUM,
            "alive": _BOOL,
            "connected": _BOOL,
        }
    ),
    "Peers": _obj({"peers": {"type": "array", "items": _ref("Peer")}}),
    "Stored": _obj({"cid": _ref("CID"), "size": {"type": "integer", "minimum": 0}}),
    "Packed": _obj({"agent": _ref("CID"), "runtime": _STR}),
    "Agents": _obj(
        {
            "agents": {
                "type": "array",
                "items": _obj(
                    {
                        "agent": _ref("CID"),
                        "name": _STR,
                        "version": _STR,
                        "runtime": _STR,
                        "description": _STR,
                        "requires": _STRINGS,
                    },
                    ["agent", "name", "version", "runtime", "description"],
                ),
            }
        }
    ),
    "Agent": _obj(
        {
            "agent": _ref("CID"),
            "name": _STR,
            "version": _STR,
            "runtime": _STR,
            "description": _STR,
            "requires": {**_STRINGS, "description": "python package requirements, e.g. numpy>=2"},
            "wheels": {**_STRINGS, "description": "the wheel files the bundle brings (they meet requires too)"},
        }
    ),
    "Environment": _obj(
        {
            "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "what peers announce"},
            "python": _obj({"interpreter": _STR, "packages": _map(_STR)}),
            "wasm": _obj({"runtime": _STR, "wasi": _STR}),
        }
    ),
    "Providers": _obj({"cid": _ref("CID"), "providers": _STRINGS}),
    "Pins": _obj(
        {
            "pins": {
                "type": "array",
                "items": _obj(
                    {
                        "cid": _ref("CID"),
                        "name": _STR,
                        "created": _INT,
                        "expires": {
                            "type": ["number", "null"],
                            "description": "Unix seconds when a remote requester's leased pin lapses; null: permanent",
                        },
                    }
                ),
            }
        }
    ),
    "Pinned": _obj({"pinned": _ref("CID")}),
    "Unpinned": _obj({"unpinned": _ref("CID")}),
    "Storage": _obj(
        {
            "blocks": {"type": "integer", "minimum": 0},
            "bytes": {"type": "integer", "minimum": 0},
            "quota": {"type": ["integer", "null"], "description": "bytes; null: no quota"},
            "map_size": _INT,
            "pins": {"type": "integer", "minimum": 0},
        }
    ),
    "Health": _obj({"status": {"const": "ok"}}),
    "Ready": _obj(
        {
            "ready": _BOOL,
            "failed": _STRINGS,
            "checks": _map(_obj({"ok": _BOOL, "detail": _STR}, ["ok"])),
            "chain_configured": _BOOL,
        }
    ),
    "OpenAPI": {"type": "object", "required": ["openapi", "info", "paths"]},
}

_ERROR_RESPONSE: Schema = {
    "description": "the error envelope: a stable code in error, what to do in detail",
    "content": {"application/json": {"schema": _ref("Error")}},
}
_CID_PARAM: Schema = {"name": "cid", "in": "path", "required": True, "schema": _ref("CID")}
_ID_PARAM: Schema = {"name": "id", "in": "path", "required": True, "schema": _ref("JobId")}
_BINARY: Schema = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}


def _json(schema: str, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _one_of(schemas: tuple[str, ...], description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"oneOf": [_ref(n) for n in schemas]}}},
    }


def _media(description: str, *types: str) -> Schema:
    return {"description": description, "content": {kind: _BINARY for kind in types}}


def _op(
    operation_id: str,
    summary: str,
    ok: Schema,
    errors: tuple[int, ...] = (),
    *,
    status: int = 200,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    write: bool = False,
) -> Schema:
    """One operation. Every one may answer 401 (a write, or a read whose class is not in the
    node's ``api.public_reads``, without the token), 403 (a loopback API refuses a foreign Host
    or Origin) and 500 (an unexpected error, still in the envelope); a write may also answer
    415 (a CSRF-prone content type) and, with a JSON body, 413/400 (size, nesting)."""
    codes = {401, 403, 500, *errors}
    if write:
        codes |= {415}
    responses: dict[str, Schema] = {str(status): ok}
    responses.update({str(code): _ERROR_RESPONSE for code in sorted(codes)})
    operation: Schema = {"operationId": operation_id, "summary": summary, "responses": responses}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = body
    # the token only when the node sets api.token (and, for a read, its class is not public)
    operation["security"] = [{}, {"bearer": []}]
    return operation


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _json_body(schema: str) -> Schema:
    return {
        "required": True,
        "description": f"JSON, at most {MAX_JSON_BYTES} bytes and {MAX_JSON_DEPTH} levels deep",
        "content": {"application/json": {"schema": _ref(schema)}},
    }


_NAME = _query("name", _STR, "the pin's name")


def paths() -> dict[str, dict[str, Schema]]:
    job, cid = [_ID_PARAM], [_CID_PARAM]
    return {
        "/v1/node": {"get": _op("getNode", "This node: peer ID, version, addresses, region", _json("Node", "node"))},
        "/v1/node/config": {
            "get": _op(
                "getNodeConfig",
                "Effective settings (secrets redacted), chain account and balance, store use",
                _json("NodeConfig", "effective configuration"),
            )
        },
        "/v1/peers": {
            "get": _op("getPeers", "Peer table from signed announcements, with liveness", _json("Peers", "peers"))
        },
        "/v1/blobs": {
            "post": _op(
                "postBlob",
                "Upload a file (application/octet-stream) or a directory (application/x-tar); returns its CID, pinned",
                _json("Stored", "stored and pinned"),
                (400, 413, 507),
                status=201,
                params=[
                    _NAME,
                    _query(
                        "owner",
                        _STR,
                        "store as a private dataset of this owner key (peer-ID form): locked until its policy",
                    ),
                ],
                body={"required": True, "content": {"application/octet-stream": _BINARY, "application/x-tar": _BINARY}},
                write=True,
            )
        },
        "/v1/blobs/{cid}": {
            "get": _op(
                "getBlob",
                "Download a file (a directory as tar), fetched from peers if not local; every block verified",
                _media("the file's bytes, or the directory as tar", "application/octet-stream", "application/x-tar"),
                (400, 404, 502, 503, 507),
                params=cid,
            )
        },
        "/v1/blobs/{cid}/providers": {
            "get": _op("getProviders", "Peers holding the CID", _json("Providers", "providers"), (400, 502), params=cid)
        },
        "/v1/policies": {
            "post": _op(
                "postPolicy",
                "Apply an owner-signed dataset policy or revocation; newer versions win",
                _json("PolicyApplied", "applied"),
                (400, 409, 413),
                status=201,
                body=_json_body("PolicyRecord"),
                write=True,
            )
        },
        "/v1/policies/{cid}": {
            "get": _op(
                "getPolicy",
                "How this node holds a private dataset: owner, state, policy",
                _json("PolicyState", "policy"),
                (400, 404),
                params=cid,
            )
        },
        "/v1/private": {
            "get": _op(
                "getPrivate",
                "Private datasets held here: policy, holders, expiry, grant holders, refusals by reason",
                _json("PrivateDatasets", "private datasets"),
            )
        },
        "/ipfs/{cid}": {"get": _gateway_op("getIpfs", [])},
        "/ipfs/{cid}/{path}": {"get": _gateway_op("getIpfsPath", [_PATH_PARAM])},
        "/v1/pins": {"get": _op("getPins", "Pinned roots", _json("Pins", "pins"))},
        "/v1/pins/{cid}": {
            "post": _op(
                "postPin",
                "Pin, fetching missing blocks",
                _json("Pinned", "pinned"),
                (400, 404, 413, 502, 503, 507),
                params=[*cid, _NAME],
                write=True,
            ),
            "delete": _op("deletePin", "Unpin", _json("Unpinned", "unpinned"), (400, 404, 413), params=cid, write=True),
        },
        "/v1/agents": {
            "get": _op(
                "getAgents", "Agents stored on this node: id, name, version, runtime", _json("Agents", "agents")
            ),
            "post": _op(
                "postAgent",
                "Upload an agent directory (application/x-tar); validated, packed, returns its id",
                _json("Packed", "packed and pinned"),
                (400, 413, 507),
                status=201,
                body={"required": True, "content": {"application/x-tar": _BINARY}},
                write=True,
            ),
        },
        "/v1/agents/{ref}": {
            "get": _op(
                "getAgent",
                "An agent by id, name@version or name (its newest version)",
                _json("Agent", "the agent"),
                (400, 404),
                params=[
                    {
                        "name": "ref",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                        "description": "an agent id, name@version, or name",
                    }
                ],
            )
        },
        "/v1/env": {
            "get": _op(
                "getEnvironment",
                "The agent environment this node offers: interpreter, packages and versions, wasm runtime",
                _json("Environment", "the environment"),
            )
        },
        "/v1/jobs": {
            "post": _op(
                "postJob",
                "Submit a job; it is placed next to its data. A paid job names its job_id and payment",
                _json("JobAccepted", "accepted (queued)"),
                (400, 409, 413, 503, 507),
                status=201,
                body=_json_body("JobRequest"),
                write=True,
            ),
            "get": _op(
                "listJobs",
                "Jobs this node requested, newest first (summaries: state, agent, times, last reason); "
                "next_cursor pages on",
                _json("JobList", "one page of jobs"),
                (400,),
                params=[
                    _query("state", _ref("JobState"), "only jobs in this state"),
                    _query("agent", _ref("CID"), "only jobs of this agent"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}, "page size"),
                    _query("cursor", {"type": "string", "pattern": r"^[0-9]{20}\.[0-9a-f]{32}$"}, "a next_cursor"),
                    _query("after", _ref("JobId"), "list the jobs created before this one (not with cursor)"),
                ],
            ),
        },
        "/v1/jobs/{id}": {
            "get": _op(
                "getJob",
                "A job: state, every transition with its reason, results, receipts (a group job's id: the group)",
                _one_of(("Job", "Group"), "the job, or the group job"),
                (404, 503),
                params=job,
            ),
            "delete": _op(
                "cancelJob",
                "Cancel a job (a finished job is left as it ended)",
                _json("Job", "the job as it is now"),
                (404, 413, 503),
                params=job,
                write=True,
            ),
        },
        "/v1/jobs/{id}/placement": {
            "get": _op(
                "getPlacement",
                "Why each candidate was chosen or refused (a group job: every run's placement)",
                _one_of(("Placement", "GroupPlacement"), "the last placement decision, or every run's"),
                (404, 503),
                params=job,
            )
        },
        "/v1/jobs/{id}/receipt": {
            "get": _op(
                "getReceipt",
                "An executing node's signed receipt (dag-cbor); the first node's unless ?node= names one",
                _media("the receipt block; X-Node names its node", "application/cbor"),
                (404, 503),
                params=[*job, _query("node", _STR, "the executing node's peer ID")],
            )
        },
        "/v1/jobs/{id}/payment": {
            "post": _op(
                "postPayment",
                "The client's signed JobPayments for a done job, each forwarded to its executor",
                _json("PaymentAnswers", "each executor's answer"),
                (400, 404, 409, 413, 502, 503),
                params=job,
                body=_json_body("PaymentRequest"),
                write=True,
            )
        },
        "/v1/jobs/{id}/events": {
            "get": _op(
                "getJobEvents",
                "State changes as server-sent events (history first, then live, until the job ends)",
                {"description": "event stream", "content": {"text/event-stream": {"schema": _STR}}},
                (404, 503),
                params=job,
            )
        },
        "/v1/jobs/{id}/logs": {
            "get": _op(
                "getJobLogs", "The agent's captured output, per node", _json("Logs", "logs"), (404, 503), params=job
            )
        },
        "/v1/groups": {
            "post": _op(
                "postGroup",
                "Submit a group (federated) job: the agent once per dataset at its holder, then the aggregator",
                _json("JobAccepted", "accepted (queued); its id is a job id"),
                (400, 409, 413, 503),
                status=201,
                body=_json_body("GroupRequest"),
                write=True,
            )
        },
        "/v1/groups/{id}": {
            "get": _op(
                "getGroup",
                "A group job: state, each dataset's run (node, result, receipt), the aggregate",
                _json("Group", "the group"),
                (404, 503),
                params=job,
            )
        },
        "/v1/evidence": {
            "get": _op(
                "getEvidence",
                "Result mismatches this node recorded as a requester, with every signed receipt, newest first",
                _json("Evidence", "evidence"),
                (400,),
                params=[
                    _query("peer", _STR, "only records that blame this peer"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "how many"),
                ],
            )
        },
        "/v1/reputation": {
            "get": _op(
                "getReputation",
                "What this node observed of the peers it gave jobs to (completed, matched, disagreed, declined, "
                "timed out, died, late), decayed, best first",
                _json("Reputation", "peers with a record"),
                (400, 503),
                params=[_query("peer", _STR, "only this peer")],
            )
        },
        "/v1/ledger": {
            "get": _op(
                "getLedger",
                "This node's settlement account, contract and claim counts (404 when it settles on no chain)",
                _json("LedgerSummary", "ledger"),
                (404,),
            )
        },
        "/v1/ledger/claims": {
            "get": _op(
                "getClaims",
                "Claims for paid jobs this node ran",
                _json("Claims", "claims, oldest first"),
                (400, 404),
                params=[_query("state", {"enum": ["pending", "submitted", "settled", "failed"]}, "only this state")],
            )
        },
        "/v1/openapi.json": {"get": _op("getOpenAPI", "This document", _json("OpenAPI", "OpenAPI 3.1 document"))},
        "/metrics": {
            "get": _op(
                "getMetrics",
                "Prometheus metrics (text exposition format, with HELP and TYPE lines)",
                {"description": "metrics", "content": {"text/plain": {"schema": _STR}}},
            )
        },
        "/v1/storage": {
            "get": _op("getStorage", "Block store use: blocks, bytes, quota, pins", _json("Storage", "storage"))
        },
        "/health": {
            "get": _op("getHealth", "Liveness: 200 whenever the process serves HTTP", _json("Health", "alive"))
        },
        "/ready": {
            "get": _op(
                "getReady",
                "Readiness: store open, libp2p up, job service started, chain reachable when configured",
                _json("Ready", "ready"),
            )
        },
        "/": {"get": _op("getDashboard", "The web dashboard (read-only)", _html("dashboard page"))},
        "/dashboard/{asset}": {
            "get": _op(
                "getDashboardAsset",
                "Dashboard assets (app.js, style.css, icon.svg)",
                {"description": "asset", "content": {"*/*": {"schema": _STR}}},
                (404,),
                params=[_asset_param()],
            )
        },
        "/docs": {"get": _op("getDocs", "This API's interactive reference (reads this document)", _html("docs page"))},
        "/docs/{asset}": {
            "get": _op(
                "getDocsAsset",
                "Docs page assets (docs.js, docs.css)",
                {"description": "asset", "content": {"*/*": {"schema": _STR}}},
                (404,),
                params=[_asset_param()],
            )
        },
    }


_PATH_PARAM: Schema = {
    "name": "path",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 4096},
    "description": "a content path under the CID, '/'-separated (UnixFS names, dag-cbor keys and indices); "
    f"at most {MAX_PATH_SEGMENTS} segments",
}
_GATEWAY_PARAMS: list[Schema] = [
    _query("format", {"enum": ["raw", "car"]}, "the response type; wins over Accept (tar, dag-json... answer 406)"),
    _query("dag-scope", {"enum": ["block", "entity", "all"], "default": "all"}, "CAR: the blocks after the path's"),
    _query("entity-bytes", {"type": "string", "pattern": "^-?[0-9]+:(-?[0-9]+|[*])$"}, "CAR: a byte range of a file"),
    _query("car-version", {"const": "1"}, "CAR version (wins over Accept's version)"),
    _query("car-order", {"enum": ["dfs", "unk"]}, "CAR block order (always answered dfs)"),
    _query("car-dups", {"enum": ["y", "n"], "default": "n"}, "CAR: send a repeated block every time"),
    _query("filename", {"type": "string", "minLength": 1, "maxLength": 255}, "Content-Disposition filename"),
    {"name": "Range", "in": "header", "required": False, "schema": _STR, "description": "raw: one bytes range"},
    {"name": "If-None-Match", "in": "header", "required": False, "schema": _STR, "description": "304 on a match"},
    {"name": "Cache-Control", "in": "header", "required": False, "schema": _STR,
     "description": "only-if-cached: 412 unless the root block is here, never fetched"},
]  # fmt: skip


def _gateway_op(operation_id: str, extra: list[Schema]) -> Schema:
    ok = _media(
        "a raw block (Accept or ?format=raw) or a CAR v1 stream (application/vnd.ipld.car; version=1; "
        "order=dfs; dups=y|n); Etag, Cache-Control immutable, X-Ipfs-Path, X-Ipfs-Roots",
        "application/vnd.ipld.raw",
        "application/vnd.ipld.car",
    )
    operation = _op(
        operation_id,
        "IPFS trustless gateway (HEAD too): verifiable responses only, every block re-hashed before it is sent; "
        "missing content is 404 unless the client may make the node fetch it (as for /v1/blobs)",
        ok,
        (400, 404, 406, 412, 416, 429, 502, 503),
        params=[_CID_PARAM, *extra, *_GATEWAY_PARAMS],
    )
    operation["responses"]["206"] = _media("one byte range of a raw block", "application/vnd.ipld.raw")
    operation["responses"]["304"] = {"description": "If-None-Match matched the Etag; no body"}
    return operation


def _html(description: str) -> Schema:
    return {"description": description, "content": {"text/html": {"schema": _STR}}}


def _asset_param() -> Schema:
    return {"name": "asset", "in": "path", "required": True, "schema": _STR}


def document(version: str) -> dict[str, Any]:
    from node.api import streams_openapi, triggers_openapi  # they build on this module's helpers

    routes = {**paths(), **streams_openapi.paths(), **triggers_openapi.paths()}
    routes["/ready"]["get"]["responses"]["503"] = _json("Ready", "not ready: failed names the failed checks")
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "mycelnet node API",
            "version": version,
            "description": "Reads need no token; writes need 'Authorization: Bearer <api.token>' when the node "
            "sets one. Interactive reference at /docs.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**SCHEMAS, **streams_openapi.SCHEMAS, **triggers_openapi.SCHEMAS},
        },
        "paths": routes,
    }
