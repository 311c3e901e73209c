"""GET /v1/reputation: what this node observed of the peers it gave jobs to, best first.

Each peer's counts of observed outcomes (undecayed), the same decayed to now, and the
placement penalty and exclusion they add up to (node/scheduler/reputation.py). The record
is this node's own: other nodes keep theirs, and nothing here comes from a peer's word.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from node.api.errors import ApiError
from node.api.services import job_service, node_of
from node.scheduler.reputation import Book

MAX_PEER_ID = 128  # longer than any peer ID: a query past it cannot match one


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/reputation", get_reputation)]


async def get_reputation(request: web.Request) -> web.Response:
    """``?peer=`` narrows the answer to one peer (an empty list when it has no record)."""
    service, jobs = node_of(request), job_service(request)
    peer = request.query.get("peer") or None
    if peer is not None and len(peer) > MAX_PEER_ID:
        raise ApiError(400, "bad_query", f"peer must be a peer ID (at most {MAX_PEER_ID} characters)")
    book = Book(await asyncio.to_thread(service.jobs.reputation), jobs.reputation)  # an LMDB scan
    rows: list[dict[str, Any]] = [
        {"peer_id": peer_id, "rank": rank, **standing.to_json()}
        for rank, (peer_id, standing) in enumerate(book.ranked(jobs.clock()), start=1)
    ]
    if peer is not None:
        rows = [row for row in rows if row["peer_id"] == peer]
    policy = {"half_life_seconds": jobs.reputation.half_life, "exclude_at": jobs.reputation.exclude_at}
    return web.json_response({**policy, "peers": rows})
