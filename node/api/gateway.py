"""``GET|HEAD /ipfs/{cid}[/{path}]``: an IPFS trustless gateway (raw blocks and CAR streams).

Only verifiable responses are served: a raw block (``?format=raw`` or ``Accept:
application/vnd.ipld.raw``) or a CAR v1 stream (``?format=car`` or ``Accept:
application/vnd.ipld.car``, with ``order``, ``dups``, ``dag-scope`` and ``entity-bytes``), so an
IPFS client trusts nothing this node says: every block is checked against its CID on its side.
The node still re-hashes every block before it is sent, exactly like ``/v1/blobs`` does
(node/api/content.py): a response up to 1 MiB is built and verified before its status line, so a
corrupt stored block answers 502; a longer CAR streams, and a corrupt or missing block met on
the way aborts the connection (a truncated CAR, never a complete-looking wrong one).

Missing content answers 404, as the spec asks of a non-recursive gateway, except when the
client may make this node fetch from peers under the same rules as ``/v1/blobs``
(:func:`node.api.guards.check_remote_fetch`, bounded by :class:`node.api.fetching.RemoteFetches`);
``Cache-Control: only-if-cached`` never fetches (412 when the root block is not here).

Every block goes through :func:`serving_gate` before it is sent: the one place where a policy on
private blocks (a node's ``privacy`` registry, when it has one) refuses to serve them.
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.api.content import PULL_BYTES, VERIFIED_BEFORE_HEADERS, _corrupt, _pull
from node.api.errors import ApiError, StreamAborted
from node.api.fetching import FETCHES_KEY
from node.api.guards import check_remote_fetch
from node.api.services import node_of
from storage.car import car_header, car_section
from storage.cid import CID, IDENTITY
from storage.dagscope import (
    MAX_PATH_SEGMENTS,
    ByteRange,
    Loader,
    PathNotFound,
    Resolved,
    Scope,
    car_blocks,
    file_size,
    resolve,
)
from storage.dagscope import load_block as identity_aware
from storage.errors import BlockNotFoundError, BlockVerificationError

if TYPE_CHECKING:
    from node.service import NodeService

RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"
IMMUTABLE = "public, max-age=29030400, immutable"
MAX_STREAMS = 32  # CAR streams at once; past that 429 (each holds an executor thread per pull)
_UNSUPPORTED_FORMATS = frozenset({"tar", "dag-json", "dag-cbor", "json", "cbor", "ipns-record"})
_HOW = "ask with ?format=raw or ?format=car (or Accept: application/vnd.ipld.raw or application/vnd.ipld.car)"

BlockGate = Callable[[CID], None]


def routes() -> list[web.RouteDef]:
    return [web.get("/ipfs/{cid}", get_ipfs), web.get("/ipfs/{cid}/{path:.*}", get_ipfs)]


@dataclass(frozen=True, slots=True)
class CarParams:
    version: int = 1
    order: str = "dfs"  # the only order served; a request for unk gets dfs, which is one
    dups: bool = False


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """What a request asks for, validated before the store is touched."""

    cid: CID
    cid_text: str
    segments: tuple[str, ...]
    raw: bool  # else CAR
    car: CarParams
    scope: Scope
    entity_bytes: ByteRange | None
    negotiated: bool  # the format came from Accept, not ?format (Content-Location is returned)
    filename: str | None
    only_if_cached: bool


class PrivateBlockRefused(Exception):
    """A block the node's privacy policy does not let it serve over HTTP."""

    def __init__(self, cid: CID) -> None:
        super().__init__(f"{cid} belongs to a private dataset: only replica holders its policy names get it")
        self.cid = cid


def serving_gate(service: NodeService) -> BlockGate:
    """The hook every block passes before it is sent: raises PrivateBlockRefused for a private one.

    A node without a privacy registry serves every block it holds (all its content is public)."""
    privacy: Any = getattr(service, "privacy", None)
    if privacy is None:
        return _serve_all

    def gate(cid: CID) -> None:
        if privacy.is_private(cid):
            raise PrivateBlockRefused(cid)

    return gate


def _serve_all(cid: CID) -> None:
    return None


# -- request parsing ---------------------------------------------------------------------------


def parse_request(request: web.Request) -> GatewayRequest:
    cid_text = request.match_info["cid"]
    cid = CID.parse(cid_text)  # InvalidCIDError answers 400 invalid_cid
    if not (cid_text.isascii() and cid_text.replace("-", "").replace("_", "").isalnum()):
        cid_text = str(cid)  # echoed in headers only as a plain multibase string
    segments = _segments(request.match_info.get("path", ""))
    query = request.query
    accepted = _accepted(request.headers.getall("Accept", []))
    negotiated = False
    if "format" in query:
        fmt = query["format"]
        if fmt in _UNSUPPORTED_FORMATS:
            raise ApiError(406, "not_acceptable", f"format={fmt} is not served by this trustless gateway; {_HOW}")
        if fmt not in ("raw", "car"):
            raise ApiError(400, "bad_format", f"unknown format {fmt[:40]!r}; {_HOW}")
        raw = fmt == "raw"
        params = next((p for kind, p in accepted if kind == "car"), CarParams()) if not raw else CarParams()
    else:
        if not accepted:
            offered = [a for a in _media_types(request.headers.getall("Accept", [])) if a not in ("*/*", "")]
            if offered:
                raise ApiError(406, "not_acceptable", f"none of {', '.join(offered)[:200]} is served here; {_HOW}")
            raise ApiError(400, "format_required", f"this gateway serves only verifiable responses; {_HOW}")
        kind, params = accepted[0]
        raw, negotiated = kind == "raw", True
    car = _car_query(query, params)
    scope = Scope.ALL
    entity_bytes = None
    if "dag-scope" in query:
        try:
            scope = Scope(query["dag-scope"])
        except ValueError:
            raise ApiError(400, "bad_dag_scope", "dag-scope must be block, entity or all") from None
    if "entity-bytes" in query:
        try:
            ranged = ByteRange.parse(query["entity-bytes"])
        except ValueError as exc:
            raise ApiError(400, "bad_entity_bytes", str(exc)) from None
        if "dag-scope" not in query or scope == Scope.ENTITY:
            scope, entity_bytes = Scope.ENTITY, ranged
    filename = query.get("filename")
    if filename is not None and (not filename or len(filename) > 255):
        raise ApiError(400, "bad_filename", "filename must be 1 to 255 characters")
    cache_control = ",".join(request.headers.getall("Cache-Control", []))
    only_if_cached = "only-if-cached" in [d.strip().lower() for d in cache_control.split(",")]
    return GatewayRequest(cid, cid_text, segments, raw, car, scope, entity_bytes, negotiated, filename, only_if_cached)


def _segments(path: str) -> tuple[str, ...]:
    parts = tuple(part for part in path.split("/") if part)  # a trailing or doubled slash adds nothing
    if len(parts) > MAX_PATH_SEGMENTS:
        raise ApiError(400, "bad_path", f"content paths are limited to {MAX_PATH_SEGMENTS} segments")
    for part in parts:
        if part in (".", ".."):
            raise ApiError(400, "bad_path", "content paths cannot contain '.' or '..' segments")
        if "\x00" in part or len(part.encode("utf-8", "surrogateescape")) > 255:
            raise ApiError(400, "bad_path", "a content path segment is at most 255 bytes and has no NUL")
    return parts


def _media_types(values: list[str]) -> list[str]:
    return [item.split(";")[0].strip().lower() for value in values for item in value.split(",")][:32]


def _accepted(values: list[str]) -> list[tuple[str, CarParams]]:
    """The served formats the Accept header asks for, best first (q-values, then order);
    a CAR variant with parameters this node cannot honour is not a match."""
    found: list[tuple[float, int, str, CarParams]] = []
    items = [item for value in values for item in value.split(",")][:32]
    for index, item in enumerate(items):
        media, *raw_params = (part.strip() for part in item.split(";"))
        params = {}
        for param in raw_params:
            key, _, value = param.partition("=")
            params[key.strip().lower()] = value.strip().strip('"').lower()
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            continue
        if quality <= 0:
            continue
        media = media.lower()
        if media == RAW_TYPE:
            found.append((-quality, index, "raw", CarParams()))
        elif media == CAR_TYPE:
            car = _car_variant(params)
            if car is not None:
                found.append((-quality, index, "car", car))
    found.sort(key=lambda entry: (entry[0], entry[1]))
    return [(kind, params) for _, _, kind, params in found]


def _car_variant(params: dict[str, str]) -> CarParams | None:
    if params.get("version", "1") != "1":
        return None
    if params.get("order", "dfs") not in ("dfs", "unk", ""):
        return None
    dups = params.get("dups", "n")
    if dups not in ("y", "n"):
        return None
    return CarParams(dups=dups == "y")


def _car_query(query: Any, params: CarParams) -> CarParams:
    """car-version, car-order and car-dups in the URL win over the Accept parameters."""
    version = query.get("car-version")
    if version is not None and version != "1":
        raise ApiError(400, "bad_car_version", "car-version must be 1 (the only CAR version served)")
    order = query.get("car-order")
    if order is not None and order not in ("dfs", "unk"):
        raise ApiError(400, "bad_car_order", "car-order must be dfs or unk")
    dups = query.get("car-dups")
    if dups is not None and dups not in ("y", "n"):
        raise ApiError(400, "bad_car_dups", "car-dups must be y or n")
    return CarParams(dups=params.dups if dups is None else dups == "y")


# -- handler ----------------------------------------------------------------------------------


async def get_ipfs(request: web.Request) -> web.StreamResponse:
    """A raw block or a CAR of the content path; see the module docstring for the rules."""
    asked = parse_request(request)
    service = node_of(request)
    gate = serving_gate(service)
    await _admit(gate, asked.cid)  # a private CID is neither served nor fetched for an HTTP client
    await _make_local(request, service, asked)
    etag = _etag(asked)
    if _matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers={"Etag": etag, "Cache-Control": IMMUTABLE})
    loop = asyncio.get_running_loop()
    load = identity_aware(lambda cid: service.store.get(cid, verify=True))
    try:
        resolved = await loop.run_in_executor(None, _resolve, load, asked, gate)
    except PathNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    headers = _headers(request, asked, resolved, etag)
    if asked.raw:
        return _raw_response(request, resolved.data, headers)
    headers["Accept-Ranges"] = "none"
    if request.method == "HEAD":
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        await response.write_eof()
        return response
    scope, span = await loop.run_in_executor(None, _span, asked, resolved)
    chunks = _car_chunks(load, asked, resolved, scope, span, gate)
    return await _stream(request, asked, chunks, headers)


async def _make_local(request: web.Request, service: NodeService, asked: GatewayRequest) -> None:
    """404 (or 412 with only-if-cached) for a root block not held here, unless this client may
    make the node fetch it from peers; a full-DAG CAR also fetches blocks missing under it."""
    root = asked.cid
    if root.hash_code == IDENTITY:
        return
    store = service.store
    held = await asyncio.to_thread(store.has, root)
    if asked.only_if_cached:
        if not held:
            raise ApiError(412, "not_cached", f"{root} is not on this node (only-if-cached)")
        return
    if request.method == "HEAD" and held:
        return
    wants_all = not asked.raw and asked.scope == Scope.ALL
    if held and not wants_all:
        return
    try:
        check_remote_fetch(request)
    except ApiError:
        if not held:
            raise ApiError(404, "not_found", f"{root} is not on this node") from None
        return  # serve what is here; a missing block below ends the CAR early
    if request.method == "HEAD" or not await asyncio.to_thread(store.missing_blocks, root):
        if not held:
            raise ApiError(404, "not_found", f"{root} is not on this node")
        return
    await request.app[FETCHES_KEY].for_read(root)
    service.provide(root)


async def _admit(gate: BlockGate, cid: CID) -> None:
    try:
        await asyncio.to_thread(gate, cid)
    except PrivateBlockRefused as exc:
        raise ApiError(403, "private_data", str(exc)) from None


def _resolve(load: Loader, asked: GatewayRequest, gate: BlockGate) -> Resolved:
    try:
        resolved = resolve(load, asked.cid, list(asked.segments))
        gate(resolved.terminal)  # a raw answer sends only this block; a CAR gates each block again
    except BlockNotFoundError as exc:
        raise ApiError(404, "not_found", f"block {exc.cid} on the path is not on this node") from None
    except BlockVerificationError as exc:
        raise _corrupt(asked.cid, exc) from None
    except PrivateBlockRefused as exc:
        raise ApiError(403, "private_data", str(exc)) from None
    return resolved


def _span(asked: GatewayRequest, resolved: Resolved) -> tuple[Scope, tuple[int, int] | None]:
    """The scope and the entity-bytes range resolved against the terminal file; an empty range
    sends the file's root block alone (its sizes tell the client why)."""
    if asked.entity_bytes is None or resolved.in_block:
        return asked.scope, None
    size = file_size(resolved.terminal, resolved.data)
    if size is None:
        return asked.scope, None  # not a file: entity-bytes is ignored, the entity is sent
    ranged = asked.entity_bytes
    if size > 0 and ranged.start >= size:
        raise ApiError(
            400, "range_not_satisfiable", f"entity-bytes starts at {ranged.start}, past the {size}-byte file"
        )
    span = ranged.resolve(size)
    return (asked.scope, span) if span is not None else (Scope.BLOCK, None)


def _car_chunks(
    load: Loader,
    asked: GatewayRequest,
    resolved: Resolved,
    scope: Scope,
    span: tuple[int, int] | None,
    gate: BlockGate,
) -> Iterator[bytes]:
    yield car_header([asked.cid])
    for cid, data in car_blocks(load, resolved, scope, span, dups=asked.car.dups):
        gate(cid)
        yield car_section(cid, data)


async def _stream(
    request: web.Request, asked: GatewayRequest, chunks: Iterator[bytes], headers: dict[str, str]
) -> web.StreamResponse:
    streams: list[int] = request.app[STREAMS_KEY]
    if streams[0] >= MAX_STREAMS:
        detail = f"this node is streaming {MAX_STREAMS} CARs already; retry in a second"
        return web.json_response(
            {"error": "too_many_streams", "detail": detail}, status=429, headers={"Retry-After": "1"}
        )
    loop = asyncio.get_running_loop()
    streams[0] += 1
    try:
        try:
            head, done = await loop.run_in_executor(None, _pull, chunks, VERIFIED_BEFORE_HEADERS)
        except BlockVerificationError as exc:
            raise _corrupt(asked.cid, exc) from None
        except BlockNotFoundError as exc:
            raise ApiError(404, "not_found", f"block {exc.cid} of the requested DAG is not on this node") from None
        except PrivateBlockRefused as exc:
            raise ApiError(403, "private_data", str(exc)) from None
        if done:
            return web.Response(body=head, headers=headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        await response.write(head)
        while not done:
            try:
                part, done = await loop.run_in_executor(None, _pull, chunks, PULL_BYTES)
            except Exception as exc:  # the status line is out: only an abort is honest
                raise StreamAborted(f"aborted the CAR of /ipfs/{asked.cid_text} after the headers: {exc}") from exc
            await response.write(part)
        await response.write_eof()
        return response
    finally:
        streams[0] -= 1


def _raw_response(request: web.Request, data: bytes, headers: dict[str, str]) -> web.Response:
    """The block, or one byte range of it (206); an unsatisfiable range answers 416."""
    headers["Accept-Ranges"] = "bytes"
    ranged = _byte_range(request.headers.get("Range", ""), len(data))
    if ranged is None:
        return web.Response(body=data, headers=headers)
    if ranged == (-1, -1):
        detail = f"the range {request.headers['Range'][:60]!r} is outside the {len(data)}-byte block"
        return web.json_response(
            {"error": "range_not_satisfiable", "detail": detail},
            status=416,
            headers={"Content-Range": f"bytes */{len(data)}"},
        )
    start, end = ranged
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return web.Response(status=206, body=data[start : end + 1], headers=headers)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` / ``a-`` / ``-n`` range; None to send everything (no, several or a
    malformed range, as RFC 9110 allows), (-1, -1) when it cannot be satisfied."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    if not first:
        length = int(last)
        return (max(0, size - length), size - 1) if length and size else (-1, -1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return (-1, -1)
    return start, end


# -- headers -----------------------------------------------------------------------------------


def _etag(asked: GatewayRequest) -> str:
    """Strong: CAR responses here are deterministic (DFS order, fixed dups) for a given request."""
    if asked.raw and not asked.segments:
        return f'"{asked.cid}.raw"'
    ranged = asked.entity_bytes
    shape = "|".join(
        [
            "/".join(asked.segments),
            "raw" if asked.raw else f"car-v{asked.car.version}-{asked.car.order}-{'y' if asked.car.dups else 'n'}",
            asked.scope.value,
            "" if ranged is None else f"{ranged.start}:{'*' if ranged.end is None else ranged.end}",
        ]
    )
    digest = hashlib.sha256(shape.encode()).hexdigest()[:16]
    return f'"{asked.cid}.{"raw" if asked.raw else "car"}.{digest}"'


def _matches(if_none_match: str, etag: str) -> bool:
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _headers(request: web.Request, asked: GatewayRequest, resolved: Resolved, etag: str) -> dict[str, str]:
    path = "/ipfs/" + asked.cid_text + "".join("/" + urllib.parse.quote(s) for s in asked.segments)
    if asked.raw:
        content_type = RAW_TYPE
    else:
        content_type = f"{CAR_TYPE}; version=1; order={asked.car.order}; dups={'y' if asked.car.dups else 'n'}"
    headers = {
        "Content-Type": content_type,
        "Content-Disposition": _disposition(asked),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": IMMUTABLE,
        "Etag": etag,
        "X-Ipfs-Path": path,
        "X-Ipfs-Roots": ",".join(str(cid) for cid in resolved.roots),
        "Vary": "Accept",
    }
    if asked.negotiated:
        query = dict(request.query)
        query["format"] = "raw" if asked.raw else "car"
        headers["Content-Location"] = f"{path}?{urllib.parse.urlencode(query)}"
    return headers


def _disposition(asked: GatewayRequest) -> str:
    """attachment with <cid>.bin / <cid>.car, or the ``filename`` asked for (ASCII and RFC 8187)."""
    name = asked.filename or f"{asked.cid_text}.{'bin' if asked.raw else 'car'}"
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name)
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        header += f"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
    return header


STREAMS_KEY: web.AppKey[list[int]] = web.AppKey("gateway_streams", list)
