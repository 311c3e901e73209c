"""Request guards that run before any handler: who may talk to the API, and what a JSON body may be.

- DNS rebinding: a page on evil.example can point its own name at 127.0.0.1 and then talk to a
  loopback API as "same origin". A loopback-bound API therefore answers only requests whose Host
  is a loopback name with the API's port, and refuses a foreign Origin.
- CSRF: a browser sends ``text/plain``, form and body-less POSTs cross-site without asking
  (CORS "simple" requests). A write must carry a content type a page cannot send without a
  preflight (application/json, or an upload's application/octet-stream / application/x-tar),
  or the bearer token, which a page cannot attach without a preflight either.
- Tokens: with ``api.token`` set, every write and every read outside ``api.public_reads`` (the
  classes of node/api/access.py) needs it, checked here for every route so no handler can forget.
  Fetching content from peers for a GET is decided by :func:`check_remote_fetch`: it makes the
  node spend bandwidth and disk for the client, so it needs the token (or, on a node without a
  token, a loopback client).
- JSON bodies: ``json.loads`` recurses per nesting level, and the node runs with a raised
  recursion limit once web3 is imported, so a deeply nested body overflows the C stack and kills
  the process. JSON bodies are bounded in size and scanned for depth on the raw bytes first.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from node.api.access import read_class
from node.api.errors import ApiError, Handler
from node.api.services import node_of

MAX_JSON_DEPTH = 64
MAX_JSON_BYTES = 1 << 20
UPLOAD_ROUTES = frozenset({"/v1/blobs", "/v1/agents"})  # they stream their bodies; the handler checks the type
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SIMPLE_TYPES = frozenset({"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
_PREFLIGHTED = frozenset({"PUT", "PATCH", "DELETE"})  # a browser asks before sending these cross-site
_READS = frozenset({"GET", "HEAD"})
_HOW = "send 'Authorization: Bearer <token>' (mycel --token, or MYCEL_API_TOKEN)"


def json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """The nesting depth of a JSON text, stopping early past ``limit``; brackets inside strings
    do not count. Linear in the body and never recursive, so it is safe on hostile input."""
    kept = body.translate(None, delete=bytes(set(range(256)) - set(b'[]{}"\\')))
    depth = deepest = 0
    in_string = escaped = False
    for char in kept:
        if in_string:
            if escaped:
                escaped = False
            elif char == 0x5C:  # backslash
                escaped = True
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _mime(request: web.Request) -> str:
    """The Content-Type the client sent ('' when none: aiohttp would report octet-stream)."""
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _has_token(request: web.Request, token: str) -> bool:
    supplied = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())


def _check_token(request: web.Request, canonical: str, config: Any) -> None:
    """With a token set: writes need it, and so do reads of classes not in api.public_reads."""
    token = str(config.get("api", "token"))
    if not token or _has_token(request, token):
        return
    if request.method in _WRITES:
        raise ApiError(401, "unauthorized", f"this API requires the bearer token for writes: {_HOW}")
    if request.method in _READS:
        kind = read_class(canonical)
        if kind is None or kind not in config.get("api", "public_reads"):
            opened = f"or the operator adds {kind!r} to api.public_reads" if kind else "this route is never public"
            raise ApiError(401, "unauthorized", f"reading {canonical} needs the bearer token: {_HOW}; {opened}")


def check_remote_fetch(request: web.Request) -> None:
    """Refuse, before any network traffic, a GET that would make this node fetch from peers for an
    unauthorised client: with a token set only its bearer may; without one only a loopback client."""
    token = str(node_of(request).config.get("api", "token"))
    if token:
        if not _has_token(request, token):
            raise ApiError(
                401,
                "unauthorized",
                f"this node does not hold all of the content; fetching it from peers needs the token: {_HOW}",
            )
    elif request.remote not in LOOPBACK_HOSTS:
        raise ApiError(
            403,
            "forbidden",
            "this node does not hold all of the content and fetches from peers only for loopback clients "
            "when api.token is unset; set api.token and send it",
        )


def _split_host(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    try:
        return name.lower(), int(port) if port else None
    except ValueError:
        return "", None


def _local_port(request: web.Request) -> int | None:
    sockname: Any = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if isinstance(sockname, tuple) and len(sockname) >= 2 else None


def _check_origin(request: web.Request) -> None:
    """Host must name this loopback API; an Origin, when sent, must be this API itself."""
    port = _local_port(request)
    name, host_port = _split_host(request.headers.get("Host", ""))
    if name not in LOOPBACK_HOSTS or (host_port or 80) != port:
        raise ApiError(403, "forbidden_host", f"this API answers only Host localhost:{port} or 127.0.0.1:{port}")
    origin = request.headers.get("Origin")
    if origin is not None:
        scheme, _, rest = origin.partition("://")
        origin_name, origin_port = _split_host(rest)
        if scheme != "http" or origin_name not in LOOPBACK_HOSTS or (origin_port or 80) != port:
            raise ApiError(403, "forbidden_origin", f"cross-origin requests from {origin[:100]!r} are refused")


def _check_write_type(request: web.Request, canonical: str, token: str) -> None:
    mime = _mime(request)
    if mime in _SIMPLE_TYPES and request.method not in _PREFLIGHTED and not _has_token(request, token):
        kind = "application/octet-stream or application/x-tar" if canonical in UPLOAD_ROUTES else "application/json"
        raise ApiError(
            415, "unsupported_media_type", f"writes need Content-Type {kind} or the bearer token (CSRF protection)"
        )
    if canonical not in UPLOAD_ROUTES and request.body_exists and mime != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")


async def _check_json(request: web.Request) -> None:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(413, "payload_too_large", f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    body = await request.read()  # kept by aiohttp: the handler's request.json() reads the same bytes
    if len(body) > MAX_JSON_BYTES:
        raise ApiError(413, "payload_too_large", f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    if json_depth(body) > MAX_JSON_DEPTH:
        raise ApiError(400, "bad_json", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host/Origin on a loopback API, CSRF-safe content types on writes, the token, bounded JSON bodies."""
    config = node_of(request).config
    host, _ = config.api_host_port
    if host in LOOPBACK_HOSTS:
        _check_origin(request)
    resource = request.match_info.route.resource
    routed = request.match_info.http_exception is None and resource is not None
    if not routed:
        return await handler(request)  # 404/405 answer before the token is asked for
    assert resource is not None
    canonical = resource.canonical
    if request.method in _WRITES:
        _check_write_type(request, canonical, str(config.get("api", "token")))
    _check_token(request, canonical, config)
    if request.method in _WRITES and canonical not in UPLOAD_ROUTES and request.body_exists:
        await _check_json(request)  # after the token: an anonymous client cannot make us read 1 MiB
    return await handler(request)
