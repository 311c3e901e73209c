"""CSRF, DNS rebinding and hostile JSON bodies are refused before any handler (in-process API)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.api.guards import MAX_JSON_DEPTH, json_depth
from node.config import load_config
from node.metrics import Metrics

JOB = json.dumps({"agent": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}).encode()
NOT_READY = 503  # the fake node has no job service: a request that got past the guards says so


class _Config:
    def __init__(self, listen: str, token: str) -> None:
        self.raw = load_config(overrides={"api.token": token, "api.max_upload_bytes": 1000}).raw
        host, _, port = listen.rpartition(":")
        self.api_host_port = (host.strip("[]"), int(port))

    def get(self, section: str, key: str) -> Any:
        return self.raw[section][key]


ClientFactory = Callable[..., Any]


@pytest.fixture
async def api() -> AsyncIterator[ClientFactory]:
    clients: list[TestClient[Any, Any]] = []

    async def start(listen: str = "127.0.0.1:0", token: str = "") -> TestClient[Any, Any]:
        async def ensure_local(root: Any) -> None:
            return None

        service = SimpleNamespace(
            config=_Config(listen, token),
            metrics=Metrics(),
            version="test",
            job_service=None,
            ensure_local=ensure_local,
            store=SimpleNamespace(pin=lambda root, name: None, missing_blocks=lambda root: []),
            provide=lambda root: None,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(build_app(cast(Any, service)), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def status_of(client: TestClient[Any, Any], method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    response = await client.request(method, path, **kwargs)
    body = await response.json()
    return response.status, body["error"] if response.status >= 400 else ""


async def test_cross_site_simple_writes_are_refused(api: ClientFactory) -> None:
    client = await api()
    text = {"Content-Type": "text/plain"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert await status_of(client, "POST", "/v1/jobs", data=JOB, headers=text) == (415, "unsupported_media_type")
    assert await status_of(client, "POST", "/v1/jobs", data=JOB, headers=form) == (415, "unsupported_media_type")
    # a fetch() of a typeless Blob sends no Content-Type; aiohttp would take it for octet-stream
    assert (await client.post("/v1/blobs", data=b"x", skip_auto_headers=["Content-Type"])).status == 415
    pin = "/v1/pins/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert (await client.post(pin, skip_auto_headers=["Content-Type"])).status == 415  # a body-less form POST
    json_type = {"Content-Type": "application/json"}
    assert (await status_of(client, "POST", "/v1/jobs", data=JOB, headers=json_type))[0] == NOT_READY


async def test_the_token_stands_in_for_the_content_type(api: ClientFactory) -> None:
    client = await api(token="s3cret")
    headers = {"Content-Type": "text/plain", "Authorization": "Bearer s3cret"}
    # past the CSRF guard, the route's own rule still wants JSON
    assert await status_of(client, "POST", "/v1/jobs", data=JOB, headers=headers) == (415, "unsupported_media_type")
    pin = "/v1/pins/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    refused = await client.post(pin, skip_auto_headers=["Content-Type"])
    assert refused.status == 415
    pinned = await client.post(pin, headers={"Authorization": "Bearer s3cret"}, skip_auto_headers=["Content-Type"])
    assert pinned.status == 200


async def test_foreign_host_and_origin_are_refused_on_loopback(api: ClientFactory) -> None:
    client = await api()
    port = client.port
    assert await status_of(client, "GET", "/v1/jobs/" + "0" * 32, headers={"Host": "evil.example"}) == (
        403,
        "forbidden_host",
    )
    assert (await status_of(client, "GET", "/v1/openapi.json", headers={"Host": f"evil.example:{port}"}))[0] == 403
    assert (await status_of(client, "GET", "/v1/openapi.json", headers={"Host": "127.0.0.1:1"}))[0] == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert (await client.get("/v1/openapi.json", headers={"Host": host})).status == 200, host
    evil = {"Origin": "http://evil.example", "Content-Type": "application/json"}
    assert await status_of(client, "POST", "/v1/jobs", data=JOB, headers=evil) == (403, "forbidden_origin")
    assert (await status_of(client, "GET", "/v1/openapi.json", headers={"Origin": "null"}))[0] == 403
    same = {"Origin": f"http://127.0.0.1:{port}"}
    assert (await client.get("/v1/openapi.json", headers=same)).status == 200


async def test_a_public_api_accepts_its_own_name(api: ClientFactory) -> None:
    client = await api(listen="0.0.0.0:5080", token="s3cret")
    assert (await client.get("/v1/openapi.json", headers={"Host": "node.example:5080"})).status == 200


async def test_deep_and_huge_json_bodies_are_refused(api: ClientFactory) -> None:
    client = await api()
    headers = {"Content-Type": "application/json"}
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert await status_of(client, "POST", "/v1/jobs", data=deep, headers=headers) == (400, "bad_json")
    huge = b'{"agent": "' + b"a" * (2 << 20) + b'"}'
    assert (await client.post("/v1/jobs", data=huge, headers=headers)).status == 413
    shallow = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert (await client.post("/v1/jobs", data=shallow, headers=headers)).status == NOT_READY


def test_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, {"c": "\\"[[["}]}') == 3
    assert json_depth(b"[" * 200_000) == MAX_JSON_DEPTH + 1  # stops counting past the limit
    assert json_depth(b"") == 0
