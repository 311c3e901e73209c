"""Ledger routes: this node's settlement account and the claims it has made."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from node.api.errors import ApiError
from node.api.services import node_of
from node.settlement.claims import ClaimState

if TYPE_CHECKING:
    from node.settlement.service import NodeSettlement


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/ledger", get_ledger), web.get("/v1/ledger/claims", get_claims)]


def _settlement(request: web.Request) -> NodeSettlement:
    service = node_of(request)
    if service.settlement is None:
        raise ApiError(404, "settlement_off", "this node settles on no chain: set chain.rpc_url and chain.contract")
    return service.settlement


async def get_ledger(request: web.Request) -> web.Response:
    return web.json_response(_settlement(request).summary())


async def get_claims(request: web.Request) -> web.Response:
    settlement = _settlement(request)
    wanted = request.query.get("state")
    if wanted is not None and wanted not in {s.value for s in ClaimState}:
        raise ApiError(400, "bad_state", f"state must be one of {[s.value for s in ClaimState]}")
    found = settlement.claims.in_state(ClaimState(wanted)) if wanted else settlement.claims.all()
    claims = sorted((c.summary() for c in found), key=lambda c: c["created_at"])
    return web.json_response({"address": settlement.address, "claims": claims})
