"""With api.token set, a read needs the token unless its route class is in api.public_reads; every
read route is classified (in-process API over a real store and job store: a process adds nothing)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.access import DEFAULT_PUBLIC_READS, READ_CLASSES, read_class
from node.api.app import build_app
from node.config import load_config
from node.errors import ConfigError
from node.metrics import Metrics
from node.privacy.registry import PrivacyRegistry
from node.scheduler.group import GroupService
from node.scheduler.jobstore import JobStore
from node.scheduler.reputation import ReputationPolicy
from node.streams.service import StreamService
from node.streams.store import StreamStore
from node.triggers.service import TriggerService
from node.triggers.store import TriggerStore
from storage.blockstore import BlockStore
from storage.cid import CID

TOKEN = {"Authorization": "Bearer s3cret"}
JOB = "0" * 32
NOT_FOUND = {"/v1/jobs/{id}", "/v1/jobs/{id}/placement", "/v1/jobs/{id}/receipt", "/v1/jobs/{id}/events",
             "/v1/jobs/{id}/logs", "/v1/ledger", "/v1/ledger/claims",
             "/v1/policies/{cid}", "/v1/groups/{id}", "/v1/agents/{ref}",
             "/ipfs/{cid}/{path}"}  # fmt: skip  # nothing of that id here; a raw block has no path
NOT_FOUND |= {
    "/v1/streams/{id}",
    "/v1/streams/{id}/entries",
    "/v1/streams/{id}/tail",
    "/v1/streams/{id}/policy",
}  # no such stream
NOT_FOUND |= {"/v1/triggers/{name}", "/v1/triggers/{name}/receipts"}  # no such trigger
STREAM = "st" + "a" * 52


class Network:
    async def addrs(self) -> list[str]:
        return ["/ip4/127.0.0.1/tcp/4001"]

    async def peers(self) -> list[str]:
        return []


class Exchange:
    async def find_providers(self, cid: CID) -> list[str]:
        return []


Api = Callable[..., Any]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Api, CID]]:
    store = BlockStore(tmp_path / "blocks", map_size=8 << 20)
    jobs = JobStore(tmp_path / "jobs")
    blob = CID.for_block(b"held here")
    store.put(blob, b"held here")
    clients: list[TestClient[Any, Any]] = []
    streams = StreamService(StreamStore(tmp_path / "streams"), cast(Any, Network()), Metrics())
    triggers = TriggerService(TriggerStore(tmp_path / "triggers"), streams, store, cast(Any, None), Metrics())

    job_service = SimpleNamespace(reputation=ReputationPolicy(), clock=time.time, jobs=jobs)
    job_service.groups = GroupService(cast(Any, job_service))

    async def start(**settings: Any) -> TestClient[Any, Any]:
        async def describe() -> dict[str, str]:
            return {"peer_id": "me"}

        service = SimpleNamespace(
            config=load_config(overrides={f"api.{key}": value for key, value in settings.items()}),
            metrics=Metrics(),
            version="test",
            store=store,
            privacy=PrivacyRegistry(tmp_path / f"privacy-{len(clients)}"),
            jobs=jobs,
            network=Network(),
            exchange=Exchange(),
            peers=SimpleNamespace(snapshot=lambda connected: []),
            describe=describe,
            refresh_gauges=lambda connected: None,
            identity=SimpleNamespace(peer_id="me"),
            api_url="http://127.0.0.1:5080",
            job_service=job_service,
            settlement=None,
            provide=lambda root: None,
            streams=streams,
            triggers=triggers,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(build_app(cast(Any, service)), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start, blob
    for client in clients:
        await client.close()
    jobs.close()
    streams.store.close()
    triggers.store.close()
    store.close()


def _url(route: str, blob: CID) -> str:
    asset = "docs.js" if route.startswith("/docs/") else "app.js"
    route = route.replace("/v1/streams/{id}", f"/v1/streams/{STREAM}")
    url = route.replace("{cid}", str(blob)).replace("{id}", JOB).replace("{asset}", asset).replace("{ref}", "no-such")
    url = url.replace("{path}", "x").replace("{name}", "no-such")
    return url + "?format=raw" if route.startswith("/ipfs/") else url


def _served(route: str) -> int:
    return 404 if route in NOT_FOUND else 200


@pytest.mark.parametrize("kind", sorted(READ_CLASSES))
async def test_each_read_class_with_and_without_the_token(api: tuple[Api, CID], kind: str) -> None:
    start, blob = api
    guarded, opened, open_node = (
        await start(token="s3cret"),
        await start(token="s3cret", public_reads=[kind]),
        await start(),
    )
    for route in READ_CLASSES[kind][0]:
        url = _url(route, blob)
        anonymous = await guarded.get(url)
        if kind in DEFAULT_PUBLIC_READS:
            assert anonymous.status == _served(route), route
        else:
            body = await anonymous.json()
            assert anonymous.status == 401 and body["error"] == "unauthorized", route
            assert "Authorization: Bearer" in body["detail"] and f"adds {kind!r} to api.public_reads" in body["detail"]
            assert (await guarded.head(url)).status == 401, route
        assert (await guarded.get(url, headers=TOKEN)).status == _served(route), route
        assert (await opened.get(url)).status == _served(route), route  # the operator opened this class
        assert (await open_node.get(url)).status == _served(route), route  # no token: a loopback API is open


async def test_a_wrong_token_is_refused_like_none(api: tuple[Api, CID]) -> None:
    start, _ = api
    client = await start(token="s3cret")
    assert (await client.get("/v1/pins", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get("/v1/pins", headers={"Authorization": "s3cret"})).status == 401
    assert (await client.get("/v1/pins", headers=TOKEN)).status == 200


async def test_every_read_route_is_classified(api: tuple[Api, CID]) -> None:
    start, _ = api
    client = await start()
    reads = {r.resource.canonical for r in client.app.router.routes() if r.method == "GET" and r.resource is not None}
    assert {route: read_class(route) for route in reads if read_class(route) is None} == {}
    assert reads == {route for routes, _ in READ_CLASSES.values() for route in routes}  # and nothing stale


def test_public_reads_are_checked_when_the_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert list(load_config().get("api", "public_reads")) == list(DEFAULT_PUBLIC_READS)
    with pytest.raises(ConfigError, match=r"unknown class\(es\) \['job'\]"):
        load_config(overrides={"api.public_reads": ["health", "job"]})
    with pytest.raises(ConfigError, match="max_remote_fetches must be a positive integer"):
        load_config(overrides={"api.max_remote_fetches": 0})
    monkeypatch.setenv("MYCEL_API_PUBLIC_READS", "health,jobs metrics")
    assert load_config().get("api", "public_reads") == ["health", "jobs", "metrics"]
