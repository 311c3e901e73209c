"""The connection manager: watermarks instead of a full mesh, gossip still everywhere, dial on demand."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from node.cluster import http_json
from node.config import load_config
from node.errors import ConfigError
from node.p2p.connmgr import ConnectionLimits, ConnectionManager


def peers(count: int) -> list[str]:
    return [f"peer{i}" for i in range(count)]


def test_nothing_is_closed_up_to_the_high_watermark_then_the_least_recently_used_down_to_low() -> None:
    now = [0.0]
    manager = ConnectionManager(ConnectionLimits(low=2, high=4, grace=10), lambda: now[0])
    assert manager.to_close(peers(4)) == []
    now[0] = 5.0
    assert manager.to_close(peers(6)) == []  # over high, but peers 4 and 5 are young and 0-3 too few
    now[0] = 20.0
    for peer in ("peer0", "peer3"):  # used recently: kept
        manager.begin(peer)
        manager.end(peer)
    manager.begin("peer1")  # a request in flight: kept whatever its age
    assert manager.to_close(peers(6)) == ["peer2", "peer4", "peer5", "peer0"]


def test_a_dropped_peer_is_forgotten_and_young_again_when_it_comes_back() -> None:
    now = [0.0]
    manager = ConnectionManager(ConnectionLimits(low=1, high=1, grace=10), lambda: now[0])
    manager.to_close(peers(2))
    now[0] = 11.0
    manager.to_close(["peer0"])  # peer1 went away
    assert manager.to_close(peers(2)) == ["peer0"]  # peer1 is back, within its grace


@pytest.mark.parametrize("low, high", [(0, 4), (5, 4)])
def test_watermarks_that_are_no_bounds_are_refused_when_the_config_is_read(low: int, high: int) -> None:
    with pytest.raises(ConfigError, match=r"p2p\.connections_low"):
        load_config(overrides={"p2p.connections_low": low, "p2p.connections_high": high})
    with pytest.raises(ValueError):
        ConnectionLimits(low, high)


def test_defaults_are_the_documented_watermarks() -> None:
    limits = load_config().connection_limits
    assert (limits.low, limits.high, limits.grace) == (16, 32, 30.0)


def _connected(node: Any) -> set[str]:
    return {p["peer_id"] for p in http_json(f"{node.api_url}/v1/peers")["peers"] if p["connected"]}


def test_a_trimmed_cluster_still_hears_every_node_and_sends_a_job_to_one_it_has_no_connection_to(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {"CONNECTIONS_LOW": "2", "CONNECTIONS_HIGH": "2", "CONNECTION_GRACE_SECONDS": "0"}.items():
        monkeypatch.setenv(f"MYCEL_P2P_{key}", value)
    regions = [f"r{i}" for i in range(5)]
    nodes = cluster(5, regions=regions, timeout=60)  # every node hears all 4 others (gossip, multi-hop)
    deadline = time.monotonic() + 60
    while True:  # one reading of every node decides: at low = high = 2, trims and re-dials go on
        counts = {node.index: len(_connected(node)) for node in nodes}
        if max(counts.values()) <= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert max(counts.values()) <= 2, counts  # not the full mesh of 4 each
    requester = nodes[0]
    alive = {p["peer_id"] for p in http_json(f"{requester.api_url}/v1/peers")["peers"] if p["alive"]}
    assert alive == {node.peer_id for node in nodes[1:]}
    target = next(node for node in nodes[1:] if node.peer_id not in _connected(requester))
    blob = _post(f"{requester.api_url}/v1/blobs", b"x", "application/octet-stream")["cid"]
    agent = _agent(requester)
    job = _post(f"{requester.api_url}/v1/jobs", {"agent": agent, "inputs": {"in": blob}, "regions": [target.region]})
    deadline = time.monotonic() + 60
    while (state := http_json(f"{requester.api_url}/v1/jobs/{job['job_id']}"))["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state["state"] == "done", state["transitions"]
    chosen = http_json(f"{requester.api_url}/v1/jobs/{job['job_id']}/placement")["candidates"][0]
    assert chosen["peer_id"] == target.peer_id and chosen["verdict"] == "chosen"  # dialed on demand


def _post(url: str, body: object, content_type: str = "application/json") -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _agent(node: Any) -> str:
    from pathlib import Path

    from agents.bundle import pack
    from storage.blockstore import BlockStore

    repo = Path(__file__).resolve().parents[3]
    with BlockStore(Path(node.data_dir) / "blocks") as store:
        return str(pack(repo / "bench" / "agents" / "trivial-wasm", store).agent_id)
