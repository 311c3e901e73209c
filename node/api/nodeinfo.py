"""``GET /v1/node/config``: the settings this node runs with, as the node itself sees them.

``mycel node doctor`` and ``status`` ask the running node rather than read their own shell's
environment or files: the node may have been started with other flags, variables or a
different node.toml, and only it knows what it settles on. Secrets are redacted: the API
token is reported as set or not, and an RPC URL loses its credentials, path and query
(hosted endpoints carry their API key there).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from node.api.services import node_of

if TYPE_CHECKING:
    from node.service import NodeService

CHAIN_TIMEOUT = 5.0  # seconds the chain may take to say what the account holds and whether the ledger is there
REDACTED = "<redacted>"


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/node/config", get_node_config)]


def redact_url(url: str) -> str:
    """``https://user:pw@rpc.example/v3/KEY?x=1`` -> ``https://rpc.example/<redacted>``."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return urlunsplit((parts.scheme, netloc, f"/{REDACTED}" if hidden else parts.path, "", ""))


def redacted_settings(raw: Any) -> dict[str, dict[str, Any]]:
    settings = {section: dict(values) for section, values in raw.items()}
    if settings["api"].get("token"):
        settings["api"]["token"] = REDACTED
    settings["chain"]["rpc_url"] = redact_url(str(settings["chain"]["rpc_url"]))
    return settings


def _chain_state(service: NodeService) -> tuple[int, bool]:
    """The account's balance and whether the ledger has code: two RPC calls, run in a thread."""
    settlement = service.settlement
    assert settlement is not None
    w3 = settlement.ledger.w3
    balance = int(w3.eth.get_balance(settlement.account.address))
    return balance, bool(w3.eth.get_code(w3.to_checksum_address(settlement.ledger.address)))


async def _chain(service: NodeService) -> dict[str, Any]:
    try:
        balance, deployed = await asyncio.wait_for(asyncio.to_thread(_chain_state, service), CHAIN_TIMEOUT)
    except TimeoutError:
        return {"balance": None, "ledger_deployed": None, "chain_error": f"no answer within {CHAIN_TIMEOUT:.0f} s"}
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return {"balance": None, "ledger_deployed": None, "chain_error": error}
    return {"balance": balance, "ledger_deployed": deployed, "chain_error": ""}


async def effective_config(service: NodeService) -> dict[str, Any]:
    config = service.config
    stats = await asyncio.to_thread(service.store.stats)
    settlement: dict[str, Any] = {"on": False}
    if service.settlement is not None:
        chain = await _chain(service)
        summary = service.settlement.summary()
        key_file = str(config.get("chain", "key_file")) or str(config.data_dir / "chain.key")
        settlement = {
            "on": True,
            "rpc_url": redact_url(str(summary["rpc_url"])),
            "contract": summary["contract"],
            "chain_id": summary["chain_id"],
            "address": summary["address"],
            "key_file": os.path.expanduser(key_file),
            "registered": bool(summary["registered"]),
            **chain,
        }
    return {
        "peer_id": service.identity.peer_id,
        "pid": os.getpid(),
        "config_file": str(config.source) if config.source else None,
        "data_dir": str(config.data_dir),
        "region": config.region,
        "listen": config.listen,
        "addrs": await service.network.addrs(),
        "bootstrap": config.bootstrap,
        "api": {
            "url": service.api_url,
            "listen": str(config.get("api", "listen")),
            "token_set": bool(config.get("api", "token")),
        },
        "price_per_cpu_second": int(config.get("capacity", "price_per_cpu_second")),
        "settlement": settlement,
        "store": {"blocks": stats.blocks, "bytes": stats.bytes, "quota": stats.quota, "pins": stats.pins},
        "settings": redacted_settings(config.raw),
    }


async def get_node_config(request: web.Request) -> web.Response:
    service = node_of(request)
    return web.json_response(await effective_config(service))
