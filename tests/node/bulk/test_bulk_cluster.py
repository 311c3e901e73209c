"""The bulk CAR path between real node processes over real libp2p on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import nacl.signing

from node.bulk import ticket
from node.cluster import http_json
from node.identity import NodeIdentity
from tests.node.test_cluster import http, metric
from tests.support import seeded_bytes


def test_a_pin_moves_the_dag_over_the_car_path_and_tickets_guard_it(cluster: Any) -> None:
    provider, fetcher = cluster(2, timeout=20)
    data = seeded_bytes("bulk-cluster", 3_000_000)
    status, body = http("POST", f"{provider.api_url}/v1/blobs", data, {"Content-Type": "application/octet-stream"})
    assert status == 201
    cid = json.loads(body)["cid"]
    status, _ = http("POST", f"{fetcher.api_url}/v1/pins/{cid}", headers={"Content-Type": "application/json"})
    assert status == 200
    moved = metric(fetcher.api_url, 'mycel_fetch_bytes_total{path="car"}')
    assert moved >= len(data)  # the file and its root, all over the CAR stream
    assert metric(fetcher.api_url, 'mycel_fetch_bytes_total{path="blocks"}') == 0
    assert metric(provider.api_url, "mycel_bulk_tickets_issued_total") == 1
    assert metric(provider.api_url, "mycel_bytes_out_total") == moved
    status, downloaded = http("GET", f"{fetcher.api_url}/v1/blobs/{cid}")
    assert status == 200 and downloaded == data

    bulk = http_json(f"{provider.api_url}/v1/node")["bulk_url"]
    stranger = NodeIdentity(nacl.signing.SigningKey.generate())
    forged = ticket.issue(stranger.sign, provider.peer_id, stranger.peer_id, "http")
    for headers in ({"Authorization": ticket.authorization(forged)}, {"Authorization": "Bearer x"}):
        status, body = http("GET", f"{bulk}/car/{cid}", headers=headers)
        assert status == 401 and json.loads(body)["error"] == "bad_ticket"
    status, body = http("GET", f"{bulk}/car/{cid}")
    assert status == 401 and json.loads(body)["error"] == "unauthenticated"
