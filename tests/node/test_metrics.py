"""/metrics through prometheus-client: the exposition parses as Prometheus text with HELP and
TYPE lines, each node counts in its own registry, and the three histograms move: job latency
after jobs end (by outcome), fetch time after real fetches over libp2p, API latency by route
template (never the raw path, so a client cannot grow the label set)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.exchange import BlockExchange, NotFoundOnNetwork
from node.identity import NodeIdentity
from node.metrics import CONTENT_TYPE, HELP, Metrics
from node.p2p.network import P2PNetwork
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.files import add_path
from tests.node.apinode import api_node
from tests.support import seeded_bytes

__all__ = ["api_node"]  # the fixture, used by name


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def test_exposition_parses_with_help_and_type_and_the_api_histogram_moves(api_node: Any) -> None:
    client, node, _ = api_node
    node.metrics.inc("blocks_served_total", 3)
    node.metrics.inc("jobs_executed_total", status="ok")
    for job_id in ("0" * 32, "1" * 32):  # two raw paths, one route template
        assert (await client.get(f"/v1/jobs/{job_id}")).status == 404
    assert (await client.get("/no/such/route/123")).status == 404
    assert (await client.request("PROPFIND", "/health")).status == 405

    response = await client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"] == CONTENT_TYPE
    text = await response.text()
    found = families(text)
    for name in ("mycel_blocks_served", "mycel_jobs_executed", "mycel_store_blocks", "mycel_http_request_seconds"):
        assert found[name].documentation, name  # a HELP line
    assert "# TYPE mycel_http_request_seconds histogram" in text and "# TYPE mycel_blocks_served_total counter" in text
    assert found["mycel_store_blocks"].type == "gauge"
    assert sample(text, "mycel_blocks_served_total") == 3
    assert sample(text, "mycel_jobs_executed_total", status="ok") == 1

    latency = "mycel_http_request_seconds_count"
    assert sample(text, latency, route="/v1/jobs/{id}", method="GET", status="404") == 2
    assert sample(text, latency, route="unmatched", method="GET", status="404") == 1
    assert sample(text, latency, route="unmatched", method="other", status="405") == 1
    routes = {s.labels["route"] for s in found["mycel_http_request_seconds"].samples}
    assert not any("0000" in route or "123" in route for route in routes), routes  # no raw path became a label
    buckets = [s for s in found["mycel_http_request_seconds"].samples if s.name.endswith("_bucket")]
    assert {s.labels["le"] for s in buckets} >= {"0.005", "1.0", "+Inf"}


async def test_job_latency_is_observed_when_jobs_end_by_outcome(api_node: Any) -> None:
    client, _, cluster = api_node
    agent = str(cluster.agent)
    done = (await (await client.post("/v1/jobs", json={"agent": agent, "args": ["0"]})).json())["job_id"]
    await cluster.final(done)
    slow = (await (await client.post("/v1/jobs", json={"agent": agent, "args": ["30"]})).json())["job_id"]
    assert (await client.delete(f"/v1/jobs/{slow}")).status == 200
    text = await (await client.get("/metrics")).text()
    assert sample(text, "mycel_job_seconds_count", outcome="done") == 1
    assert sample(text, "mycel_job_seconds_count", outcome="cancelled") == 1
    assert sample(text, "mycel_job_seconds_count", outcome="failed") == 0
    job = cluster.jobs.get(done)
    assert job is not None
    took = job.transitions[-1].at - job.transitions[0].at
    assert sample(text, "mycel_job_seconds_sum", outcome="done") == pytest.approx(took)


class Peer:
    def __init__(self, tmp: Path, name: str) -> None:
        self.store = BlockStore(tmp / name, map_size=8 << 20)
        self.network = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
        self.metrics = Metrics()
        self.exchange = BlockExchange(self.store, self.network, self.metrics)


@pytest.fixture
async def two_peers(tmp_path: Path) -> AsyncIterator[tuple[Peer, Peer]]:
    holder, fetcher = Peer(tmp_path, "holder"), Peer(tmp_path, "fetcher")
    for peer in (holder, fetcher):
        await peer.network.start()
    await fetcher.network.connect((await holder.network.addrs())[0])
    yield holder, fetcher
    for peer in (holder, fetcher):
        await peer.network.stop()
        peer.store.close()


async def test_fetch_time_is_observed_for_real_fetches_in_the_nodes_own_registry(
    two_peers: tuple[Peer, Peer], tmp_path: Path
) -> None:
    holder, fetcher = two_peers
    (tmp_path / "f").write_bytes(seeded_bytes("metrics", 600_000))
    root = add_path(holder.store, tmp_path / "f").cid
    await fetcher.exchange.fetch(root)
    (tmp_path / "g").write_bytes(seeded_bytes("metrics-pinned", 300_000))
    other = add_path(holder.store, tmp_path / "g").cid
    await fetcher.exchange.fetch_and_pin(other, [holder.network.peer_id])
    with pytest.raises(NotFoundOnNetwork):
        await fetcher.exchange.fetch(CID.for_block(b"nobody has this", 0x55), [])

    text = fetcher.metrics.render().decode()
    assert sample(text, "mycel_fetch_seconds_count", outcome="ok") == 2
    assert sample(text, "mycel_fetch_seconds_count", outcome="error") == 1
    assert 0 < sample(text, "mycel_fetch_seconds_sum", outcome="ok") < 60
    assert sample(text, "mycel_blocks_stored_total") > 0
    held = holder.metrics.render().decode()  # the other node's registry saw none of this
    assert sample(held, "mycel_fetch_seconds_count", outcome="ok") == 0
    assert sample(held, "mycel_blocks_served_total") == sample(text, "mycel_blocks_stored_total")


def test_counters_must_end_in_total_and_unset_values_read_zero() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="_total"):
        metrics.inc("blocks_served")
    assert metrics.value("never_counted_total") == 0
    metrics.inc("gossip_rejected_total", reason="stale")
    assert metrics.value("gossip_rejected_total", reason="stale") == 1


def test_every_named_metric_registers_beside_the_others() -> None:
    """A gauge named like a counter minus ``_total`` is the same family to Prometheus and is
    refused as a duplicate; every name the node uses must coexist in one registry."""
    metrics = Metrics()
    for name in HELP:
        if name.endswith("_total"):
            metrics.inc(name, **({"status": "ok"} if name == "jobs_executed_total" else {}))
        elif name == "claims":
            for state in ("pending", "settled", "failed"):
                metrics.set(name, 1, state=state)
        else:
            metrics.set(name, 1)
    found = {family.name for family in text_string_to_metric_families(metrics.render().decode())}
    assert {"mycel_claims", "mycel_claims_settled", "mycel_claims_failed", "mycel_store_blocks"} <= found
