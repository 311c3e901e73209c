"""A write that fails for lack of space answers 507 with the reason, not 500."""

from __future__ import annotations

import errno

import lmdb
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.api.errors import error_middleware
from storage.errors import QuotaExceededError


@pytest.mark.parametrize(
    ("exc", "error", "says"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "insufficient_storage", "disk is full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "insufficient_storage", "disk is full"),
        (lmdb.DiskError("mdb_txn_commit: No space left on device"), "insufficient_storage", "cannot grow"),
        (QuotaExceededError("store quota exceeded: 1 MiB used"), "quota_exceeded", "quota exceeded"),
    ],
)
async def test_full_store_or_disk_is_507(exc: Exception, error: str, says: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/write", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/write")
        body = await response.json()
    assert response.status == 507
    assert body["error"] == error and says in body["detail"] and "\n" not in body["detail"]
