"""``GET /v1/agents/{ref}``: an agent this node holds, by id, ``name@version`` or ``name`` (newest);
``GET /v1/env``: the environment agents run in here.

Clients name agents the way their developers do; the node answers with the agent id (the
manifest's CID) that a job must carry, or a 404 that says how to deploy the agent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from agents.bundle import Bundle, resolve
from agents.environment import agent_environment
from agents.errors import AgentNotFound, BadAgentRef, ManifestError
from node.api.errors import ApiError
from node.api.services import node_of
from storage.errors import BlockNotFoundError

MAX_REF = 200


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/agents/{ref}", get_agent), web.get("/v1/env", get_env)]


def agent_json(bundle: Bundle) -> dict[str, Any]:
    manifest = bundle.manifest
    return {
        "agent": str(bundle.agent_id),
        "name": manifest.name,
        "version": manifest.version,
        "runtime": manifest.runtime,
        "description": manifest.description,
        "requires": list(manifest.requires),
        "wheels": list(manifest.wheels),
    }


async def get_agent(request: web.Request) -> web.Response:
    service = node_of(request)
    ref = request.match_info["ref"]
    if len(ref) > MAX_REF:
        raise ApiError(400, "bad_agent_ref", f"an agent reference is at most {MAX_REF} characters")
    try:
        bundle = await asyncio.to_thread(resolve, service.store, ref)  # walks the pins: off the loop
    except AgentNotFound as exc:
        raise ApiError(404, "no_agent", str(exc)) from None
    except BadAgentRef as exc:
        raise ApiError(400, "bad_agent_ref", str(exc)) from None
    except BlockNotFoundError:
        detail = f"no agent {ref} on this node (deploy it with 'mycel agent deploy DIR')"
        raise ApiError(404, "no_agent", detail) from None
    except ManifestError as exc:
        raise ApiError(400, "not_an_agent", str(exc)) from None
    return web.json_response(agent_json(bundle))


async def get_env(request: web.Request) -> web.Response:
    """The agent environment: interpreter, python packages and versions, wasm runtime, and its hash
    (the hash this node announces, so peers can tell equal environments apart without the list)."""
    env = await asyncio.to_thread(agent_environment)  # reads package metadata once: off the loop
    return web.json_response(env.to_json())
