"""The stream routes in-process over the real stream service and LMDB store (no peer is involved,
so a process adds nothing): appends, refusals with the stream unchanged, reads, the SSE tail,
and every answer validated against the OpenAPI document."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.api.errors import SERVICE_KEY
from node.config import load_config
from node.metrics import Metrics
from node.streams.service import MAX_TAILS, StreamService
from node.streams.store import StreamStore
from storage import dagcbor
from storage.streamentry import verify_entry
from tests.node.streams.helpers import Writer
from tests.node.test_openapi import check


class Network:
    peer_id = "12D3KooWRequesterRequesterRequesterRequester"

    async def peers(self) -> list[str]:
        return []


HEAD = {"peer": "12D3KooWHolder", "streams": {}}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    streams = StreamService(StreamStore(tmp_path / "streams"), cast(Any, Network()), Metrics(), lambda: [HEAD])
    node = SimpleNamespace(config=load_config(), metrics=streams.metrics, streams=streams, version="test")
    test_client: TestClient[Any, Any] = TestClient(TestServer(build_app(cast(Any, node)), host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()
    streams.store.close()


def _b64(*raws: bytes) -> list[str]:
    return [base64.b64encode(raw).decode() for raw in raws]


async def _call(client: TestClient[Any, Any], method: str, url: str, template: str, **kwargs: Any) -> Any:
    response = await client.request(method, url, **kwargs)
    body = await check(response, template, method)
    return response.status, body


async def test_append_read_and_refusals(client: TestClient[Any, Any]) -> None:
    writer = Writer()
    base = f"/v1/streams/{writer.stream}"
    entries, stream_template = base + "/entries", "/v1/streams/{id}/entries"
    one, two, three = writer.next(b"a"), writer.next(b"b"), writer.next(b"c")
    status, body = await _call(client, "POST", entries, stream_template, json={"entries": _b64(one, two)})
    assert status == 201 and body["head_seq"] == 2 and body["appended"] == 2 and body["origin"]
    forged = dagcbor.decode(three)
    forged["entry"]["payload"] = b"evil"
    rival = writer.at(2, verify_entry(one).cid)
    refusals = [
        ({"entries": _b64(dagcbor.encode(forged))}, 400, "bad_signature"),
        ({"entries": _b64(writer.at(5, writer.head))}, 409, "gap"),
        ({"entries": _b64(two)}, 409, "replay"),
        ({"entries": ["***"]}, 400, "malformed"),
        ({"entries": _b64(b"x" * 20_000)}, 400, "oversize"),
        ({"entries": _b64(Writer("other").next())}, 400, "wrong_stream"),
        ({"entries": []}, 400, "bad_request"),
        ({"entries": _b64(three), "retention": {"entries": -1}}, 400, "bad_retention"),
    ]
    for request, code, error in refusals:
        status, body = await _call(client, "POST", entries, stream_template, json=request)
        assert (status, body["error"]) == (code, error), request
        _, info = await _call(client, "GET", base, "/v1/streams/{id}")
        assert info["head_seq"] == 2 and not info["forked"]  # unchanged
    status, body = await _call(client, "POST", entries, stream_template, json={"entries": _b64(three)})
    assert status == 201 and body["head_seq"] == 3

    _, page = await _call(client, "GET", entries + "?after=1&limit=10", stream_template)
    assert [e["seq"] for e in page["entries"]] == [2, 3]
    assert [verify_entry(base64.b64decode(e["data"])).payload for e in page["entries"]] == [b"b", b"c"]
    _, listed = await _call(client, "GET", "/v1/streams", "/v1/streams")
    assert [s["stream"] for s in listed["streams"]] == [writer.stream]
    assert (await _call(client, "GET", entries + "?after=x", stream_template))[0] == 400
    assert (await _call(client, "GET", "/v1/streams/nope", "/v1/streams/{id}"))[0] == 400
    assert (await _call(client, "GET", f"/v1/streams/{Writer('none').stream}", "/v1/streams/{id}"))[0] == 404

    # a fork: refused, evidence kept, the stream marked forked, nothing more appended
    status, body = await _call(client, "POST", entries, stream_template, json={"entries": _b64(rival)})
    assert (status, body["error"]) == (409, "fork")
    _, info = await _call(client, "GET", base, "/v1/streams/{id}")
    assert info["forked"] and info["forks"] == 1 and info["head_seq"] == 3
    status, body = await _call(client, "POST", entries, stream_template, json={"entries": _b64(writer.next())})
    assert (status, body["error"]) == (409, "forked")


async def test_holders_come_from_peers_announcements(client: TestClient[Any, Any]) -> None:
    writer = Writer()
    await client.post(f"/v1/streams/{writer.stream}/entries", json={"entries": _b64(writer.next())})
    assert writer.head is not None
    HEAD["streams"] = {writer.stream: {"seq": 7, "cid": writer.head}}
    try:
        _, info = await _call(client, "GET", f"/v1/streams/{writer.stream}", "/v1/streams/{id}")
    finally:
        HEAD["streams"] = {}
    assert info["holders"] == [{"peer": "12D3KooWHolder", "seq": 7, "cid": str(writer.head)}]


async def test_the_tail_sends_history_then_live_entries(client: TestClient[Any, Any]) -> None:
    writer = Writer()
    url = f"/v1/streams/{writer.stream}"
    await client.post(url + "/entries", json={"entries": _b64(writer.next(b"old"))})
    response = await client.get(url + "/tail?after=0")
    assert response.status == 200 and response.content_type == "text/event-stream"

    async def next_entry() -> dict[str, Any]:
        data = ""
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                event: dict[str, Any] = json.loads(data)
                return event

    first = await asyncio.wait_for(next_entry(), 5)
    assert first["seq"] == 1
    await client.post(url + "/entries", json={"entries": _b64(writer.next(b"new"))})
    live = await asyncio.wait_for(next_entry(), 5)
    assert live["seq"] == 2 and verify_entry(base64.b64decode(live["data"])).payload == b"new"
    response.close()
    missing = await client.get(f"/v1/streams/{Writer('none').stream}/tail")
    await check(missing, "/v1/streams/{id}/tail", "GET")
    assert missing.status == 404


async def test_live_tails_are_bounded(client: TestClient[Any, Any]) -> None:
    writer = Writer()
    await client.post(f"/v1/streams/{writer.stream}/entries", json={"entries": _b64(writer.next())})
    service = cast(Any, client.server).app[SERVICE_KEY].streams
    service.tails = MAX_TAILS
    status, body = await _call(client, "GET", f"/v1/streams/{writer.stream}/tail", "/v1/streams/{id}/tail")
    assert (status, body["error"]) == (503, "too_many_tails")
    service.tails = 0
