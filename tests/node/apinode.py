"""The real API app in-process over a node whose parts are real where an answer depends on them.

The job service, job store, block store, peer table and executor are the real classes (the
scheduler harness's in-process executor runs the jobs); NodeService's own methods that the
handlers call (describe, ensure_local, refresh_gauges) are the real ones, bound to this node.
Only the libp2p host is a stand-in: nothing here crosses a network, so a process or a socket
to a peer would add nothing to what the OpenAPI contract and metrics tests look at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import MethodType, SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.config import load_config
from node.metrics import Metrics
from node.privacy.registry import PrivacyRegistry
from node.service import NodeService
from storage.cid import CID
from tests.node.scheduler.harness import Cluster, build

CONFIG = {("api", "token"): "", ("api", "max_upload_bytes"): 1 << 20}
DEFAULTS = load_config()  # every other setting as a node would have it by default


class Network:
    """The libp2p host's API surface the handlers read: addresses, peers, traffic."""

    peer_id = "12D3KooWRequesterRequesterRequesterRequester"

    async def addrs(self) -> list[str]:
        return ["/ip4/127.0.0.1/tcp/4001"]

    async def peers(self) -> list[str]:
        return []

    def traffic(self) -> tuple[int, int]:
        return 0, 0


class Exchange:
    async def find_providers(self, cid: CID) -> list[str]:
        return []

    async def fetch(self, root: CID, providers: object = None, *, max_bytes: int | None = None) -> None:
        from node.exchange import NotFoundOnNetwork

        raise NotFoundOnNetwork(f"{root} is not stored here and no connected peer has it")


def node_for(cluster: Cluster, tmp_path: Path) -> Any:
    config = SimpleNamespace(
        get=lambda section, key: CONFIG.get((section, key), DEFAULTS.raw[section][key]),
        api_host_port=("127.0.0.1", 0),
        region="eu",
    )
    metrics = Metrics()
    cluster.requester.metrics = metrics  # the node's job service reports into the node's registry
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    node = SimpleNamespace(
        config=config,
        metrics=metrics,
        store=cluster.store,
        privacy=PrivacyRegistry(tmp_path / "privacy"),
        jobs=cluster.jobs,
        job_service=cluster.requester,
        peers=cluster.requester.peers,
        network=Network(),
        exchange=Exchange(),
        identity=SimpleNamespace(peer_id=Network.peer_id),
        execution=cluster.executors[0].execution,
        settlement=None,
        payments=None,
        version="0.1.0-test",
        api_url="http://127.0.0.1:0",
        sandbox_layers={"seccomp": "on"},
        scratch_dir=scratch,
        provide=lambda cid: None,
    )
    for name in ("describe", "ensure_local", "refresh_gauges"):
        setattr(node, name, MethodType(getattr(NodeService, name), node))
    return node


@pytest.fixture
async def api_node(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Any, Cluster]]:
    """An aiohttp test client on the node's app, the node, and the harness behind it."""
    cluster = build(tmp_path)
    node = node_for(cluster, tmp_path)
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(node), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, node, cluster
    finally:
        await client.close()
        await cluster.requester.stop()
        cluster.close()
