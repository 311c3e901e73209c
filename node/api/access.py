"""Which GET routes an API token protects: every read route belongs to one class, and
``api.public_reads`` names the classes anyone may read when ``api.token`` is set.

The table is the single source for the guard (node/api/guards.py), the config check and the
README's per-route table. A route missing from it needs the token (fail closed), and a test
checks that every registered read route is classified, so a new route cannot slip through.

Kept free of aiohttp imports: node/config.py validates ``api.public_reads`` against it.
"""

from __future__ import annotations

from typing import Final

# class -> (canonical routes, why it is or is not public by default)
READ_CLASSES: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "health": (("/health", "/ready"), "supervisors and load balancers probe without secrets"),
    "dashboard": (("/", "/dashboard/{asset}"), "static page and assets; its data comes from the other routes"),
    "openapi": (
        ("/v1/openapi.json", "/docs", "/docs/{asset}"),
        "the API description and its docs page, the same for every node",
    ),
    "node": (("/v1/node", "/v1/peers", "/v1/env"), "what the node announces on gossip to every peer anyway"),
    "config": (("/v1/node/config",), "the data dir, chain account and RPC host are the operator's business"),
    "storage": (("/v1/storage",), "how much the node stores says what it holds"),
    "pins": (("/v1/pins",), "the list of pinned CIDs reveals the data held"),
    "policies": (("/v1/policies/{cid}", "/v1/private"), "which private datasets a node holds, and for whom"),
    "agents": (("/v1/agents", "/v1/agents/{ref}"), "deployed agents reveal what the operator runs"),
    "blobs": (
        ("/v1/blobs/{cid}", "/v1/blobs/{cid}/providers"),
        "content is private data to whoever knows a CID; providers makes the node query the network",
    ),
    "gateway": (
        ("/ipfs/{cid}", "/ipfs/{cid}/{path}"),
        "the same content as blobs, over the IPFS trustless gateway protocol; open it for a public gateway",
    ),
    "jobs": (
        (
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/placement",
            "/v1/jobs/{id}/receipt",
            "/v1/jobs/{id}/events",
            "/v1/jobs/{id}/logs",
            "/v1/evidence",
            "/v1/reputation",
            "/v1/groups/{id}",
        ),
        "job specs, logs and receipts (and whom this node gave work to) belong to the client that submitted them",
    ),
    "ledger": (("/v1/ledger", "/v1/ledger/claims"), "claims name clients and amounts"),
    "streams": (
        (
            "/v1/streams",
            "/v1/streams/{id}",
            "/v1/streams/{id}/entries",
            "/v1/streams/{id}/tail",
            "/v1/streams/{id}/holders",
            "/v1/streams/{id}/policy",
        ),
        "stream entries are their writers' data; the operator decides who may read them",
    ),
    "triggers": (
        ("/v1/triggers", "/v1/triggers/{name}", "/v1/triggers/{name}/receipts"),
        "which agents run on whose streams, with their receipts and state, is the operator's business",
    ),
    "metrics": (("/metrics",), "traffic and job counters; scrapers can send the token"),
}
DEFAULT_PUBLIC_READS: Final[tuple[str, ...]] = ("health", "dashboard", "openapi", "node")

ROUTE_CLASS: Final[dict[str, str]] = {route: name for name, (routes, _) in READ_CLASSES.items() for route in routes}


def read_class(canonical: str) -> str | None:
    """The class of a read route, or None for a route the table does not know (token needed)."""
    return ROUTE_CLASS.get(canonical)


def unknown_classes(names: list[str]) -> list[str]:
    """Entries of an ``api.public_reads`` list that name no class (for the config check)."""
    return [name for name in names if name not in READ_CLASSES]
