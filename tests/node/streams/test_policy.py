"""Stream policies on a node: kept only when the writer signed them (newest version wins, across a
restart), served on /mycel/stream, and enforced there: a peer outside the regions gets a refusal
instead of entries, and a node outside them does not subscribe. The HTTP routes refuse every bad
record, typed, and the stream info shows the policy."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.config import load_config
from node.metrics import Metrics
from node.streams.model import Refusal, StreamRefused
from node.streams.policy import (
    PolicyGate,
    encode_policy_request,
    encode_refused,
    parse_policy_reply,
)
from node.streams.protocol import (
    HolderRefused,
    Since,
    StreamProtocolError,
    Watch,
    parse_entries,
    parse_since,
    parse_watching,
)
from node.streams.service import StreamService
from node.streams.store import StreamStore
from storage import dagcbor
from storage.privacy.errors import PrivacyError
from storage.privacy.errors import Refusal as PolicyRefusal
from storage.streampolicy import sign_policy
from tests.node.streams.helpers import Writer
from tests.node.test_openapi import check

INSIDE, OUTSIDE, UNKNOWN = "12D3KooWInside", "12D3KooWOutside", "12D3KooWUnknown"
REGIONS = {INSIDE: "eu-west", OUTSIDE: "us-east"}


class Source:
    """A peer answering the stream protocol with whatever the test sets."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.asked: list[bytes] = []

    async def request(self, peer_id: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]:
        self.asked.append(payload)
        return self.frames


@pytest.fixture
def gate(tmp_path: Path) -> Any:
    store = StreamStore(tmp_path / "streams")
    yield PolicyGate(store, REGIONS.get, lambda: "eu-west")
    store.close()


async def test_the_newest_writer_signed_policy_is_kept_across_a_restart(tmp_path: Path) -> None:
    writer = Writer("feed")
    store = StreamStore(tmp_path / "streams")
    gate = PolicyGate(store)
    first = sign_policy(writer.key, "feed", ["eu-west"], version=1)
    assert gate.put(first.data) == (first, True)
    assert gate.put(first.data) == (first, False)  # the same record again: kept, nothing written
    rival = sign_policy(writer.key, "feed", ["us-east"], version=1, stamp=99)
    with pytest.raises(PrivacyError) as stale:  # another policy at the same version
        gate.put(rival.data)
    assert stale.value.reason is PolicyRefusal.STALE
    second = sign_policy(writer.key, "feed", ["eu-west", "eu-north"], version=2)
    assert gate.put(second.data) == (second, True)
    with pytest.raises(PrivacyError) as older:
        gate.put(first.data)
    assert older.value.reason is PolicyRefusal.STALE
    store.close()
    reopened = StreamStore(tmp_path / "streams")
    assert PolicyGate(reopened).get(writer.stream) == second
    reopened.close()


async def test_a_peer_outside_the_regions_is_refused_entries(gate: Any) -> None:
    writer = Writer("feed")
    since = Since(writer.stream, 0, 10).encode()
    assert await gate.screen(OUTSIDE, since) is None  # no policy: served as before
    gate.put(sign_policy(writer.key, "feed", ["eu-west"]).data)
    assert await gate.screen(INSIDE, since) is None
    for peer in (OUTSIDE, UNKNOWN):  # an unknown region is never inside
        refused = await gate.screen(peer, since)
        assert refused is not None
        with pytest.raises(HolderRefused) as raised:  # what the asking replica reads
            parse_entries(refused, Since(writer.stream, 0, 10))
        assert raised.value.reason == "outside_regions" and "eu-west" in raised.value.detail
    assert gate.refused == 2
    assert await gate.screen(OUTSIDE, Since(Writer("other").stream, 0, 10).encode()) is None


async def test_a_peer_outside_the_regions_gets_no_head_notices(gate: Any) -> None:
    writer = Writer("feed")
    watch = Watch(writer.stream).encode()
    assert await gate.screen(OUTSIDE, watch) is None  # no policy: the service takes the watch
    gate.put(sign_policy(writer.key, "feed", ["eu-west"]).data)
    assert await gate.screen(INSIDE, watch) is None
    for peer in (OUTSIDE, UNKNOWN):
        refused = await gate.screen(peer, watch)
        assert refused is not None
        answer = parse_watching(refused)  # what the watching replica reads: refused, no notices
        assert answer is not None and answer.ttl == 0
    assert gate.refused == 2


async def test_the_policy_travels_on_the_stream_protocol_and_is_checked_on_arrival(gate: Any) -> None:
    writer = Writer("feed")
    signed = sign_policy(writer.key, "feed", ["eu-west"])
    answer = await gate.screen(OUTSIDE, encode_policy_request(writer.stream))
    assert parse_policy_reply(answer, writer.stream) is None  # none held: an empty record
    gate.put(signed.data)
    answer = await gate.screen(OUTSIDE, encode_policy_request(writer.stream))
    assert parse_policy_reply(answer, writer.stream) == signed
    assert parse_policy_reply([], writer.stream) is None  # a node from before policies: empty reply
    with pytest.raises(StreamProtocolError):  # ... because its parser refuses the request (it answers [])
        parse_since(encode_policy_request(writer.stream))
    other = Writer("other")
    forged = dagcbor.decode(signed.data)
    forged["payload"]["regions"] = ["us-east"]
    hostile = [
        [dagcbor.encode({"op": "policy", "record": signed.data})],  # another stream's policy
        [dagcbor.encode({"op": "policy", "record": dagcbor.encode(forged)})],
        [dagcbor.encode({"op": "policy", "record": "text"})],
        [dagcbor.encode({"op": "policy", "record": b"", "extra": 1})],
        [b"\xff"],
        [dagcbor.encode({"op": "policy", "record": b"x" * 5000})],
        [b"a", b"b"],
    ]
    from node.errors import NetworkError

    for frames in hostile:
        with pytest.raises(NetworkError):
            parse_policy_reply(frames, other.stream if frames is hostile[0] else writer.stream)


async def test_a_node_outside_the_regions_does_not_subscribe(tmp_path: Path) -> None:
    writer = Writer("feed")
    signed = sign_policy(writer.key, "feed", ["eu-west"])
    source = Source([dagcbor.encode({"op": "policy", "record": signed.data})])
    store = StreamStore(tmp_path / "streams")
    streams = StreamService(store, cast(Any, source), Metrics(), policy=PolicyGate(store, REGIONS.get, lambda: "us"))
    with pytest.raises(StreamRefused) as refused:
        await streams.subscribe(writer.stream, INSIDE)
    assert refused.value.refusal is Refusal.OUTSIDE_REGIONS and refused.value.refusal.status == 403
    assert store.subscriptions() == {} and len(source.asked) == 1  # it asked for the policy, never for entries
    assert streams.policy.get(writer.stream) == signed  # and keeps it
    store.close()


async def test_a_replica_refused_by_its_source_raises_outside_regions(tmp_path: Path) -> None:
    writer = Writer("feed")
    store = StreamStore(tmp_path / "streams")
    source = Source(encode_refused("outside_regions", "not here"))
    streams = StreamService(store, cast(Any, source), Metrics())
    with pytest.raises(StreamRefused) as refused:
        await streams.sync(writer.stream, INSIDE)
    assert refused.value.refusal is Refusal.OUTSIDE_REGIONS
    store.close()


# -- the HTTP routes ---------------------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    streams = StreamService(StreamStore(tmp_path / "streams"), cast(Any, Source([])), Metrics())
    node = SimpleNamespace(config=load_config(), metrics=streams.metrics, streams=streams, version="test")
    test_client: TestClient[Any, Any] = TestClient(TestServer(build_app(cast(Any, node)), host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()
    streams.store.close()


def _record(data: bytes) -> dict[str, str]:
    return {"record": base64.b64encode(data).decode()}


async def test_the_policy_routes_refuse_bad_records_typed_and_show_the_policy(client: TestClient[Any, Any]) -> None:
    writer, other = Writer("feed"), Writer("feed", seed=b"o" * 32)
    url, template = f"/v1/streams/{writer.stream}/policy", "/v1/streams/{id}/policy"
    signed = sign_policy(writer.key, "feed", ["eu-west"])
    response = await client.get(url)
    assert response.status == 404 and (await response.json())["error"] == "no_policy"
    response = await client.post(url, json=_record(signed.data))
    body = await check(response, template, "post")
    assert response.status == 201 and body["replaced"] and body["policy"]["regions"] == ["eu-west"]
    forged = dagcbor.decode(signed.data)
    forged["payload"]["regions"] = ["us-east"]
    non_writer = dagcbor.decode(sign_policy(other.key, "feed", ["us-east"]).data)
    non_writer["payload"]["stream"] = writer.stream  # the victim's stream, the attacker's key
    bad = [
        ({"record": 5}, 400, "bad_policy"),
        ({"record": "***"}, 400, "bad_policy"),
        ({}, 400, "bad_policy"),
        ({**_record(signed.data), "extra": 1}, 400, "bad_policy"),
        ({"record": "A" * 10_000}, 413, "payload_too_large"),
        (_record(dagcbor.encode(forged)), 400, "forged"),
        (_record(b"junk"), 400, "malformed"),
        (_record(sign_policy(other.key, "feed", []).data), 400, "wrong_stream"),  # another stream's policy
        (_record(sign_policy(writer.key, "feed", ["us-east"], stamp=5).data), 409, "stale"),
    ]
    for sent, status, error in bad:
        response = await client.post(url, json=sent)
        assert (response.status, (await response.json())["error"]) == (status, error), sent
    response = await client.post(url, json=_record(dagcbor.encode(non_writer)))
    assert response.status == 403 and (await response.json())["error"] == "wrong_owner"
    response = await client.get(url)
    body = await check(response, template, "get")
    assert body["policy"]["regions"] == ["eu-west"] and base64.b64decode(body["record"]) == signed.data
    response = await client.post(f"/v1/streams/{writer.stream}/entries", json={"entries": [
        base64.b64encode(writer.next(b"a")).decode()]})  # fmt: skip
    assert response.status == 201
    response = await client.get(f"/v1/streams/{writer.stream}")
    info = await check(response, "/v1/streams/{id}", "get")
    assert info["policy"]["regions"] == ["eu-west"] and info["policy"]["cid"] == str(signed.cid)
