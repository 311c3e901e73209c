"""``GET /v1/jobs``: the jobs this node requested, newest first, filtered and paged.

Served from the job store's index, so listing a long history decodes one page of small
summaries, not every job's transitions, placement and logs.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from agents.bundle import as_cid, resolve
from agents.errors import AgentNotFound, BadAgentRef
from node.api.errors import ApiError
from node.api.services import node_of
from node.scheduler.job import JobState
from node.scheduler.jobstore import MAX_PAGE, is_job_id

DEFAULT_LIMIT = 50
_CURSOR = re.compile(r"^[0-9]{20}\.[0-9a-f]{32}$")
_STATES = [state.value for state in JobState]


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/jobs", get_jobs)]


async def get_jobs(request: web.Request) -> web.Response:
    service = node_of(request)
    query = request.query
    state = query.get("state") or None
    if state is not None and state not in _STATES:
        raise ApiError(400, "bad_state", f"state must be one of {_STATES}")
    agent = query.get("agent") or None
    if agent is not None:  # an id (one spelling of the CID, as the index holds it) or NAME[@VERSION]
        cid = as_cid(agent)
        if cid is None:
            try:
                cid = (await asyncio.to_thread(resolve, service.store, agent)).agent_id
            except AgentNotFound as exc:
                raise ApiError(404, "no_agent", str(exc)) from None
            except BadAgentRef as exc:
                raise ApiError(400, "bad_agent_ref", str(exc)) from None
        agent = str(cid)
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise ApiError(400, "bad_limit", f"limit must be an integer from 1 to {MAX_PAGE}") from None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "bad_limit", f"limit must be an integer from 1 to {MAX_PAGE}")
    cursor = query.get("cursor") or None
    after = query.get("after") or None
    if cursor is not None and after is not None:
        raise ApiError(400, "bad_cursor", "give cursor or after, not both")
    if cursor is not None and not _CURSOR.match(cursor):
        raise ApiError(400, "bad_cursor", "cursor must be the next_cursor of a previous page")
    if after is not None:
        if not is_job_id(after):
            raise ApiError(400, "bad_cursor", "after must be a job id (32 lowercase hex digits)")
        cursor = await asyncio.to_thread(service.jobs.cursor_after, after)
        if cursor is None:
            raise ApiError(400, "bad_cursor", f"after names no job on this node ({after})")
    jobs, next_cursor = await asyncio.to_thread(
        lambda: service.jobs.page(state=state, agent=agent, limit=limit, cursor=cursor)
    )
    return web.json_response({"jobs": jobs, "next_cursor": next_cursor})
