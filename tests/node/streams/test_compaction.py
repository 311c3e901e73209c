"""Retention compaction in process over the real stream service, LMDB stores and block store:
entries past a stream's retention leave the live log for a pinned snapshot (its CID in the stream
info), ``GET entries?after=`` below the live log names the snapshot holding the next entry, and
the snapshot exports as a CAR that the repo's CAR reader imports, every entry's signed bytes
intact. A restart finishes a compaction the stop interrupted."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.config import load_config
from node.metrics import Metrics
from node.privacy.gate import ServingGate
from node.privacy.registry import PrivacyRegistry
from node.streams.compaction import compact
from node.streams.model import Retention
from node.streams.policy import PolicyGate
from node.streams.service import StreamService, verify_batch
from node.streams.store import StreamStore
from storage import dagcbor
from storage.blockstore import BlockStore
from storage.car import export_car, import_car
from storage.cid import CID, DAG_CBOR
from storage.streamentry import verify_entry
from storage.streampolicy import sign_policy
from tests.node.streams.helpers import Writer
from tests.node.test_openapi import check


class Network:
    peer_id = "12D3KooWRequesterRequesterRequesterRequester"

    async def peers(self) -> list[str]:
        return []


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Any]:
    blocks = BlockStore(tmp_path / "blocks")
    streams = StreamService(StreamStore(tmp_path / "streams"), cast(Any, Network()), Metrics(), list, blocks)
    await streams.start()
    app = build_app(cast(Any, SimpleNamespace(config=load_config(), metrics=streams.metrics, streams=streams,
                                               version="test")))  # fmt: skip
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield SimpleNamespace(client=client, streams=streams, blocks=blocks)
    await client.close()
    await streams.stop()
    streams.store.close()
    blocks.close()


def _b64(raws: list[bytes]) -> list[str]:
    return [base64.b64encode(raw).decode() for raw in raws]


async def _info_until(client: TestClient[Any, Any], stream: str, snapshot_seq: int) -> Any:
    deadline = time.monotonic() + 10
    while True:
        info = await check(await client.get(f"/v1/streams/{stream}"), "/v1/streams/{id}")
        if info["snapshot_seq"] == snapshot_seq:
            return info
        assert time.monotonic() < deadline, info
        await asyncio.sleep(0.02)


async def test_entries_past_retention_go_to_a_pinned_snapshot_named_below_the_live_log(
    node: Any, tmp_path: Path
) -> None:
    client, writer = node.client, Writer()
    raws = [writer.next(f"reading {i}".encode()) for i in range(1, 14)]
    url = f"/v1/streams/{writer.stream}/entries"
    response = await client.post(url, json={"entries": _b64(raws[:10]), "retention": {"entries": 4}})
    assert response.status == 201
    first = await _info_until(client, writer.stream, 6)
    assert first["first_seq"] == 7 and first["snapshot"] is not None
    listed = await check(await client.get(f"{url}?after=0"), "/v1/streams/{id}/entries")
    assert [e["seq"] for e in listed["entries"]] == [7, 8, 9, 10]
    assert listed["snapshot"] == {"cid": first["snapshot"], "first_seq": 1, "last_seq": 6}
    assert (await client.post(url, json={"entries": _b64(raws[10:])})).status == 201
    second = await _info_until(client, writer.stream, 9)
    below = await check(await client.get(f"{url}?after=7"), "/v1/streams/{id}/entries")
    assert below["snapshot"] == {"cid": second["snapshot"], "first_seq": 7, "last_seq": 9}
    assert (await check(await client.get(f"{url}?after=2"), "/v1/streams/{id}/entries"))["snapshot"]["cid"] == (
        first["snapshot"]
    )
    assert (await check(await client.get(f"{url}?after=9"), "/v1/streams/{id}/entries"))["snapshot"] is None
    # the live log holds the last 4, nothing waits for a snapshot, each snapshot is pinned
    store: StreamStore = node.streams.store
    assert [verify_entry(raw).seq for raw in store.since(writer.stream, 0, 100)] == [10, 11, 12, 13]
    assert store.compacting(writer.stream, 1 << 20, 100) == []
    roots = [CID.parse(first["snapshot"]), CID.parse(second["snapshot"])]
    assert all(node.blocks.is_pinned(root) for root in roots)
    # a snapshot is a CAR the repo's reader imports; the entries are the signed bytes appended
    car = io.BytesIO()
    export_car(node.blocks, roots[0], car)
    car.seek(0)
    elsewhere = BlockStore(tmp_path / "elsewhere")
    try:
        imported = import_car(elsewhere, car)
        assert imported.roots == [roots[0]]
        record = dagcbor.decode(elsewhere.get(roots[0]))
        assert (record["stream"], record["first_seq"], record["last_seq"]) == (writer.stream, 1, 6)
        assert record["entries"] == raws[:6] and [verify_entry(r).seq for r in record["entries"]] == [1, 2, 3, 4, 5, 6]
    finally:
        elsewhere.close()


def test_a_compaction_cut_short_is_finished_later_and_nothing_is_lost(tmp_path: Path) -> None:
    store, blocks, writer = StreamStore(tmp_path / "streams"), BlockStore(tmp_path / "blocks"), Writer()
    try:
        raws = [writer.next(f"r{i}".encode()) for i in range(1, 9)]
        store.append(verify_batch(writer.stream, raws), origin=True, retention=Retention(entries=2))
        # stopped before any snapshot: the 6 dropped entries wait in the same transaction's table
        assert [seq for seq, _ in store.compacting(writer.stream, 1 << 20, 100)] == [1, 2, 3, 4, 5, 6]
        assert store.compacting_streams() == [writer.stream]
        written = compact(store, blocks, writer.stream)
        assert len(written) == 1 and store.compacting_streams() == []
        info = store.info(writer.stream)
        assert info is not None and info.snapshot == written[0] and info.snapshot_seq == 6
        assert dagcbor.decode(blocks.get(written[0]))["entries"] == raws[:6]
    finally:
        store.close()
        blocks.close()


def test_a_region_bound_streams_snapshots_go_only_to_peers_in_its_regions(tmp_path: Path) -> None:
    """A snapshot is an ordinary pinned block; of a stream whose writer bound it to regions, the
    serving gate every peer path asks (blocks, bitswap, bulk, have probes) sends it only inside them,
    and the node's content summary and DHT provides leave it out."""
    store, blocks = StreamStore(tmp_path / "streams"), BlockStore(tmp_path / "blocks")
    registry = PrivacyRegistry(tmp_path / "privacy")
    regions = {"12D3KooWInside": "eu-west", "12D3KooWOutside": "us-east"}
    policies = PolicyGate(store, regions.get)
    gate = ServingGate(registry, regions.get)
    gate.also = policies.may_send_snapshot
    try:
        bound, free = Writer("bound"), Writer("free")
        policies.put(sign_policy(bound.key, "bound", ["eu-west"]).data)
        snapshots = {}
        for writer in (bound, free):
            raws = [writer.next(f"r{i}".encode()) for i in range(1, 6)]
            store.append(verify_batch(writer.stream, raws), origin=True, retention=Retention(entries=2))
            snapshots[writer.name] = compact(store, blocks, writer.stream)
            assert snapshots[writer.name] and all(blocks.is_pinned(cid) for cid in snapshots[writer.name])
        for cid in snapshots["bound"]:
            assert gate.may_send("12D3KooWInside", cid)
            assert not gate.may_send("12D3KooWOutside", cid)
            assert not gate.may_send("12D3KooWUnknown", cid)  # no region known: never inside
            assert policies.withholds(cid)
        for cid in snapshots["free"]:  # no policy: public like any pinned block
            assert gate.may_send("12D3KooWOutside", cid) and not policies.withholds(cid)
        entry = CID.for_block(b"any other block", DAG_CBOR)
        assert gate.may_send("12D3KooWOutside", entry) and not policies.withholds(entry)
        store.close()
        store = StreamStore(tmp_path / "streams")  # the index survives a restart
        again = PolicyGate(store, regions.get)
        assert all(not again.may_send_snapshot("12D3KooWOutside", cid) for cid in snapshots["bound"])
    finally:
        store.close()
        blocks.close()
        registry.close()
