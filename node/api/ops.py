"""Operational routes: liveness, readiness and storage use.

``/health`` answers 200 whenever the process serves HTTP, so a supervisor restarts only a
hung or dead node; ``/ready`` says whether the node can do useful work right now (store
open, libp2p host up, chain reachable when one is configured), so a load balancer or an
orchestrator routes around a node that is alive but not usable, and says which check failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from node.api.services import node_of

CHECK_TIMEOUT = 5.0  # seconds one readiness check may take before it counts as failed


def routes() -> list[web.RouteDef]:
    return [web.get("/health", get_health), web.get("/ready", get_ready), web.get("/v1/storage", get_storage)]


async def get_health(request: web.Request) -> web.Response:
    """Nothing is checked: answering at all is the proof of liveness."""
    return web.json_response({"status": "ok"})


async def _check(probe: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "detail": f"no answer within {CHECK_TIMEOUT:.0f} s"}
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__}
    return {"ok": True}


async def get_ready(request: web.Request) -> web.Response:
    service = node_of(request)

    async def store() -> None:
        await asyncio.to_thread(service.store.stats)  # a closed or broken LMDB environment raises here

    async def p2p() -> None:
        if not await service.network.addrs():
            raise RuntimeError("the libp2p host listens on no address")

    async def jobs() -> None:
        if service.job_service is None:
            raise RuntimeError("the job service has not started")

    checks = {"store": await _check(store), "p2p": await _check(p2p), "jobs": await _check(jobs)}
    settlement = service.settlement
    if settlement is not None:

        async def chain() -> None:
            await asyncio.to_thread(lambda: settlement.ledger.w3.eth.block_number)

        checks["chain"] = await _check(chain)
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"ready": not failed, "failed": failed, "checks": checks, "chain_configured": settlement is not None}
    return web.json_response(body, status=503 if failed else 200)


async def get_storage(request: web.Request) -> web.Response:
    stats = await asyncio.to_thread(node_of(request).store.stats)
    fields = ("blocks", "bytes", "quota", "map_size", "pins")
    return web.json_response({name: getattr(stats, name) for name in fields})
