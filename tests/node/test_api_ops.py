"""Health, readiness, the job list and the dashboard's assets, through the real aiohttp app
in-process: a process would add nothing these checks look at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.scheduler.job import JobRecord, JobSpec, JobState, Transition
from node.scheduler.jobstore import JobStore, new_job_id
from storage.blockstore import BlockStore
from storage.cid import CID
from tests.support import REPO_ROOT

AGENT = CID.for_block(b"agent", 0x71)


class Network:
    def __init__(self) -> None:
        self.up = True

    async def addrs(self) -> list[str]:
        if not self.up:
            raise RuntimeError("the libp2p host is not running")
        return ["/ip4/127.0.0.1/tcp/4001"]


class Unreachable:
    @property
    def block_number(self) -> int:
        raise ConnectionError("connection refused")


def fake_service(tmp_path: Path) -> Any:
    config = SimpleNamespace(get=lambda section, key: "", api_host_port=("127.0.0.1", 5080))
    return SimpleNamespace(
        config=config,
        metrics=None,
        store=BlockStore(tmp_path / "blocks", map_size=8 << 20),
        jobs=JobStore(tmp_path / "jobs"),
        network=Network(),
        job_service=object(),
        settlement=None,
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Any]]:
    service = fake_service(tmp_path)
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(service)))
    await client.start_server()
    yield client, service
    await client.close()
    service.jobs.close()
    service.store.close()


async def test_health_is_always_200_and_ready_names_the_failed_check(api: Any) -> None:
    client, service = api
    assert (await client.get("/health")).status == 200
    ready = await client.get("/ready")
    assert ready.status == 200 and (await ready.json())["failed"] == []

    service.network.up = False
    ready = await client.get("/ready")
    body = await ready.json()
    assert ready.status == 503 and body["failed"] == ["p2p"] and "not running" in body["checks"]["p2p"]["detail"]
    assert (await client.get("/health")).status == 200

    service.network.up = True
    service.settlement = SimpleNamespace(ledger=SimpleNamespace(w3=SimpleNamespace(eth=Unreachable())))
    body = await (await client.get("/ready")).json()
    assert body["failed"] == ["chain"] and "connection refused" in body["checks"]["chain"]["detail"]

    service.settlement = None
    service.store.close()
    ready = await client.get("/ready")
    assert ready.status == 503 and (await ready.json())["failed"] == ["store"]
    service.store = BlockStore(service.store.path, map_size=8 << 20)  # reopened for the fixture to close


async def test_job_list_filters_pages_and_refuses_bad_parameters(api: Any) -> None:
    client, service = api
    ids = []
    for i in range(5):
        job = JobRecord(new_job_id(), JobSpec(agent=AGENT))
        job.transitions.append(Transition(JobState.QUEUED, 100.0 + i, "submitted"))
        if i % 2:
            job.transitions.append(Transition(JobState.CANCELLED, 200.0 + i, "cancelled by the client"))
        service.jobs.save(job)
        ids.append(job.job_id)
    newest = ids[::-1]

    first = await (await client.get("/v1/jobs", params={"limit": "2"})).json()
    assert [j["job_id"] for j in first["jobs"]] == newest[:2] and first["next_cursor"]
    rest = await (await client.get("/v1/jobs", params={"cursor": first["next_cursor"]})).json()
    assert [j["job_id"] for j in rest["jobs"]] == newest[2:] and rest["next_cursor"] is None
    after = await (await client.get("/v1/jobs", params={"after": newest[0], "state": "cancelled"})).json()
    assert [j["job_id"] for j in after["jobs"]] == [ids[3], ids[1]]  # older than ids[4], cancelled
    by_agent = await (await client.get("/v1/jobs", params={"agent": str(AGENT), "state": "queued"})).json()
    assert [j["job_id"] for j in by_agent["jobs"]] == [ids[4], ids[2], ids[0]]

    for params in ({"limit": "0"}, {"limit": "501"}, {"limit": "x"}, {"state": "sleeping"}, {"cursor": "../x"},
                   {"after": "nope"}, {"after": "0" * 32}, {"cursor": first["next_cursor"], "after": ids[0]},
                   {"agent": "Not a CID, nor a name"}):  # fmt: skip
        response = await client.get("/v1/jobs", params=params)
        assert response.status == 400, params


async def test_the_dashboard_is_served_with_a_strict_content_security_policy(api: Any) -> None:
    client, _ = api
    page = await client.get("/")
    html = await page.text()
    csp = page.headers["Content-Security-Policy"]
    assert page.status == 200 and page.content_type == "text/html" and '<script src="/dashboard/app.js"' in html
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in html and "style=" not in html  # nothing inline that the policy would block
    script = await client.get("/dashboard/app.js")
    assert script.status == 200 and script.content_type == "text/javascript"
    assert "Content-Security-Policy" in script.headers
    assert (await client.get("/dashboard/style.css")).content_type == "text/css"
    for name in ("index.html", "nope.js", "..%2Fapp.py", "__init__.py"):
        assert (await client.get(f"/dashboard/{name}")).status == 404, name


async def test_the_sdk_pages_through_the_job_list(api: Any) -> None:
    from sdk.client import Client

    client, service = api
    ids = []
    for i in range(3):
        job = JobRecord(new_job_id(), JobSpec(agent=AGENT))
        job.transitions.append(Transition(JobState.QUEUED, 10.0 + i, "submitted"))
        service.jobs.save(job)
        ids.append(job.job_id)
    async with Client(str(client.make_url("")).rstrip("/")) as sdk:
        first, cursor = await sdk.jobs(limit=2)
        rest, end = await sdk.jobs(limit=2, cursor=cursor)
        assert [j["job_id"] for j in first + rest] == ids[::-1] and end is None
        assert (await sdk.jobs(state="done"))[0] == []
        assert [j["job_id"] for j in (await sdk.jobs(agent=AGENT, limit=1))[0]] == [ids[2]]


def test_the_dashboard_assets_are_package_data() -> None:
    """An installed (non-editable) node serves the same page: setuptools ships every asset."""
    import fnmatch
    import tomllib

    from node.api.dashboard import ASSETS

    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = patterns["node.api.dashboard"]
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in shipped) for name in ASSETS)
