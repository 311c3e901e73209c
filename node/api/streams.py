"""Stream routes: append signed entries, read them, tail them live, list, inspect, replicate.

Entries travel as base64 of their signed dag-cbor bytes, exactly as the writer signed
them: the node checks and stores those bytes and hands the same bytes back, so a reader
verifies every entry itself (``storage.streamentry.verify_entry``) without trusting the
node. A refused entry is answered 400 (malformed, bad signature, oversize, wrong stream)
or 409 (gap, replay, fork, forked) with the refusal as ``error`` and the stream unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from aiohttp import web

from node.api.errors import ApiError
from node.api.services import node_of
from node.errors import NetworkError
from node.streams.model import MAX_RETENTION, Retention, StreamRefused
from node.streams.protocol import MAX_BATCH
from node.streams.service import MAX_TAILS, StreamService
from storage.errors import InvalidCIDError
from storage.peerid import public_key_from_peer_id
from storage.privacy.errors import PrivacyError
from storage.privacy.errors import Refusal as PolicyRefusal
from storage.streamentry import Entry, is_stream_id
from storage.streampolicy import MAX_RECORD, SignedStreamPolicy, parse_policy

MAX_PAGE = 256
KEEPALIVE = 15.0


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/streams", list_streams),
        web.get("/v1/streams/{id}", get_stream),
        web.post("/v1/streams/{id}/entries", post_entries),
        web.get("/v1/streams/{id}/entries", get_entries),
        web.get("/v1/streams/{id}/tail", get_tail),
        web.post("/v1/streams/{id}/subscribe", post_subscribe),
        web.get("/v1/streams/{id}/holders", get_holders),
        web.post("/v1/streams/{id}/policy", post_policy),
        web.get("/v1/streams/{id}/policy", get_policy),
    ]


def _stream(request: web.Request) -> str:
    stream = request.match_info["id"]
    if not is_stream_id(stream):
        raise ApiError(400, "bad_stream_id", "a stream id is 'st' and 52 base32 characters (`mycel stream create`)")
    return stream


def _refused(exc: StreamRefused) -> ApiError:
    return ApiError(exc.refusal.status, exc.refusal.value, str(exc))


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(400, f"bad_{name}", f"{name} must be an integer in [{low}, {high}]")
    return int(text)


def entry_json(entry: Entry) -> dict[str, Any]:
    return {**entry.summary(), "data": base64.b64encode(entry.raw).decode()}


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body is a JSON object")
    return body


def _retention(body: dict[str, Any]) -> Retention | None:
    value = body.get("retention")
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"entries", "seconds"}:
        raise ApiError(400, "bad_retention", "retention is an object of entries and/or seconds")
    counts = [value.get(key, 0) for key in ("entries", "seconds")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_RETENTION for n in counts):
        raise ApiError(400, "bad_retention", f"retention entries and seconds are integers in [0, {MAX_RETENTION}]")
    return Retention(counts[0], counts[1])


async def post_entries(request: web.Request) -> web.Response:
    """Append a batch of signed entries (base64 of their dag-cbor bytes), all or none."""
    stream = _stream(request)
    body = await _json_body(request)
    encoded = body.get("entries")
    if not isinstance(encoded, list) or not 1 <= len(encoded) <= MAX_BATCH or set(body) - {"entries", "retention"}:
        raise ApiError(400, "bad_request", f"send {{'entries': [base64, ...]}} with 1 to {MAX_BATCH} entries")
    raws = []
    for index, item in enumerate(encoded):
        try:
            raws.append(base64.b64decode(item, validate=True) if isinstance(item, str) else b"")
        except (binascii.Error, ValueError):
            raws.append(b"")
        if not raws[-1]:
            raise ApiError(400, "malformed", f"entry {index} is not base64 of a signed entry")
    try:
        info = await node_of(request).streams.append(stream, raws, _retention(body))
    except StreamRefused as exc:
        raise _refused(exc) from None
    return web.json_response({**info.json(), "appended": len(raws)}, status=201)


async def get_entries(request: web.Request) -> web.Response:
    """Entries after ``after`` (oldest first, at most ``limit``), as signed bytes and summaries."""
    stream = _stream(request)
    after = _int_query(request, "after", 0, 0, (1 << 63) - 1)
    limit = _int_query(request, "limit", 100, 1, MAX_PAGE)
    service = node_of(request).streams
    try:
        info = await service.info(stream)
    except StreamRefused as exc:
        raise _refused(exc) from None
    entries = await service.since(stream, after, limit)
    listed = [entry_json(entry) for entry in entries]
    snapshot = None
    if after + 1 < info.first_seq:  # compacted away: which snapshot holds the next entry
        held = await asyncio.to_thread(service.store.snapshot_for, stream, after + 1)
        if held is not None:
            snapshot = {"cid": str(held[0]), "first_seq": held[1], "last_seq": held[2]}
    return web.json_response(
        {"stream": stream, "head_seq": info.head_seq, "first_seq": info.first_seq, "entries": listed,
         "snapshot": snapshot}
    )  # fmt: skip


async def get_tail(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each entry after ``after`` (default: the head), then each new one, live."""
    stream = _stream(request)
    service = node_of(request).streams
    try:
        info = await service.info(stream)
    except StreamRefused as exc:
        raise _refused(exc) from None
    after = _int_query(request, "after", info.head_seq, 0, (1 << 63) - 1)
    if service.tails >= MAX_TAILS:
        raise ApiError(503, "too_many_tails", f"this node serves at most {MAX_TAILS} live tails; retry later")
    service.tails += 1
    try:
        return await _tail(request, service, stream, after)
    finally:
        service.tails -= 1


async def _tail(request: web.Request, service: StreamService, stream: str, after: int) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    while True:
        changed = service.changed(stream)  # taken before reading: an append in between still wakes us
        entries = await service.since(stream, after, MAX_PAGE)
        for entry in entries:
            await response.write(f"event: entry\ndata: {json.dumps(entry_json(entry))}\n\n".encode())
            after = entry.seq
        if entries:
            continue
        try:
            await asyncio.wait_for(changed.wait(), KEEPALIVE)
        except TimeoutError:
            await response.write(b": keepalive\n\n")  # finds a client that went away


async def list_streams(request: web.Request) -> web.Response:
    infos = await asyncio.to_thread(node_of(request).streams.store.streams)
    return web.json_response({"streams": [info.json() for info in infos]})


async def get_stream(request: web.Request) -> web.Response:
    """One stream: head, retention, fork mark and evidence count, and the peers announcing its head."""
    stream = _stream(request)
    service = node_of(request).streams
    try:
        info = await service.info(stream)
    except StreamRefused as exc:
        raise _refused(exc) from None
    forks = await asyncio.to_thread(service.store.forks, stream)
    policy = await asyncio.to_thread(service.policy.view, stream)
    return web.json_response({**info.json(), "forks": len(forks), "holders": service.holders(stream), "policy": policy})


async def get_holders(request: web.Request) -> web.Response:
    """Where a stream is, held here or not: what a pipeline stage is placed by (its input's holder)."""
    stream = _stream(request)
    service = node_of(request).streams
    here = await asyncio.to_thread(service.store.info, stream) is not None
    return web.json_response({"stream": stream, "here": here, "holders": service.holders(stream)})


async def post_subscribe(request: web.Request) -> web.Response:
    """Replicate a stream from the peer ``{"peer": ...}`` names: pull now, then keep pulling."""
    stream = _stream(request)
    body = await _json_body(request)
    peer = body.get("peer")
    try:
        if not isinstance(peer, str) or set(body) != {"peer"}:
            raise InvalidCIDError("send {'peer': PEER_ID}")
        public_key_from_peer_id(peer)
    except InvalidCIDError as exc:
        raise ApiError(400, "bad_peer", f"peer must be the stream holder's peer ID: {exc}") from None
    service = node_of(request).streams
    try:
        await service.subscribe(stream, peer)
    except StreamRefused as exc:
        raise _refused(exc) from None
    except NetworkError as exc:
        raise ApiError(502, "network_error", str(exc)) from None
    info = await asyncio.to_thread(service.store.info, stream)
    return web.json_response({"stream": stream, "source": peer, "head_seq": info.head_seq if info else 0})


async def post_policy(request: web.Request) -> web.Response:
    """Set the stream's data policy: ``{"record": base64}``, the policy its writer signed
    (``storage.streampolicy``; the SDK and ``mycel stream create --region`` sign it). Checked here
    (the writer's signature, the stream id, every field) and kept if newer than the one held; the
    stream need not hold an entry yet (set it before the first append)."""
    stream = _stream(request)
    body = await _json_body(request)
    encoded = body.get("record")
    if set(body) != {"record"} or not isinstance(encoded, str):
        raise ApiError(400, "bad_policy", 'send {"record": "<base64 of the writer-signed stream policy>"}')
    if len(encoded) > (MAX_RECORD * 4) // 3 + 4:
        raise ApiError(413, "payload_too_large", f"a signed stream policy is at most {MAX_RECORD} bytes")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_policy", "record is base64 of the signed policy") from None
    service = node_of(request).streams

    def put() -> tuple[SignedStreamPolicy, bool]:
        named = parse_policy(data).policy.stream
        if named != stream:
            raise ApiError(400, "wrong_stream", f"the policy is for stream {named}, not {stream}")
        return service.policy.put(data)

    try:
        _, replaced = await asyncio.to_thread(put)
    except PrivacyError as exc:
        status = 409 if exc.reason is PolicyRefusal.STALE else 403 if exc.reason is PolicyRefusal.WRONG_OWNER else 400
        raise ApiError(status, exc.reason.value, exc.detail) from None
    view = await asyncio.to_thread(service.policy.view, stream)
    return web.json_response({"stream": stream, "policy": view, "replaced": replaced}, status=201)


async def get_policy(request: web.Request) -> web.Response:
    """The stream's policy as held here, with its signed record (base64) to check offline."""
    stream = _stream(request)
    service = node_of(request).streams
    signed = await asyncio.to_thread(service.policy.get, stream)
    if signed is None:
        raise ApiError(404, "no_policy", f"no policy for stream {stream} on this node (its entries may go anywhere)")
    return web.json_response(
        {"stream": stream, "policy": {**signed.policy.json(), "cid": str(signed.cid)},
         "record": base64.b64encode(signed.data).decode()}
    )  # fmt: skip
