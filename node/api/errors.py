"""Every API error is JSON ``{"error": ..., "detail": ...}`` with the right status.

Except once a response's status line is out: then a JSON error appended to the body would turn
into a complete-looking wrong body, so the error is re-raised and aiohttp drops the connection
(the client sees a truncated transfer).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import lmdb
from aiohttp import web

from node.errors import NetworkError
from node.exchange import NotFoundOnNetwork
from storage.errors import (
    BlockNotFoundError,
    BlockVerificationError,
    IncompleteDAGError,
    InvalidCIDError,
    QuotaExceededError,
    StorageError,
    UnixFSError,
)

log = logging.getLogger("mycelnet.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


SERVICE_KEY: web.AppKey[Any] = web.AppKey("service")  # the NodeService (typed where it is read)
METRICS_KEY: web.AppKey[Any] = web.AppKey("metrics")


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


class StreamAborted(Exception):
    """A streamed response failed after its headers were sent: the connection must be dropped."""


def _started(request: web.Request) -> bool:
    writer = request.writer if request.transport is not None else None
    return writer is not None and writer.output_size > 0


def error_response(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


_MAPPING: list[tuple[type[BaseException], int, str]] = [
    (InvalidCIDError, 400, "invalid_cid"),
    (BlockNotFoundError, 404, "not_found"),
    (IncompleteDAGError, 404, "not_found"),
    (BlockVerificationError, 502, "verification_failed"),
    (NotFoundOnNetwork, 404, "not_found"),
    (QuotaExceededError, 507, "quota_exceeded"),
    (UnixFSError, 400, "unixfs_error"),
    (NetworkError, 502, "network_error"),
    (StorageError, 400, "storage_error"),
]


_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _disk_full(exc: BaseException) -> str | None:
    """Why a write failed for lack of space (a full disk or the user's quota), else None: the
    client can do nothing about a 500, but a 507 tells it to free space or try another node."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return f"the node's disk is full ({exc.strerror}); free space on the node or try another one"
    if isinstance(exc, lmdb.DiskError | lmdb.MapFullError):
        return f"the node's store cannot grow ({type(exc).__name__}); free space on the node or try another one"
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except StreamAborted as exc:
        log.error("%s %s: %s", request.method, request.path, exc)
        raise
    except web.HTTPException as exc:
        if exc.status < 400 or _started(request):
            raise
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    except Exception as exc:
        if _started(request):
            raise
        return _error_for(request, exc)


def _error_for(request: web.Request, exc: Exception) -> web.Response:
    """The JSON answer for an exception a handler raised before its response started."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.error, exc.detail)
    full = _disk_full(exc)
    if full is not None:
        log.error("%s %s: %s", request.method, request.path, exc)
        return error_response(507, "insufficient_storage", full)
    for kind, status, name in _MAPPING:
        if isinstance(exc, kind):
            return error_response(status, name, str(exc))
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")
