"""The heartbeat announcement's period and the liveness timeout stretch with the cluster's size,
so the announcements each node receives a second stop growing with the number of nodes."""

from __future__ import annotations

import time

import pytest

from node.announce import MAX_STRETCH, SCALE_NODES, PeerTable, heartbeat, liveness_timeout


def test_up_to_ten_nodes_the_heartbeat_is_announce_interval() -> None:
    assert [heartbeat(30.0, nodes) for nodes in (1, 5, SCALE_NODES)] == [30.0, 30.0, 30.0]


@pytest.mark.parametrize("nodes", [10, 20, 30, 50, 100])
def test_from_ten_to_a_hundred_nodes_each_node_receives_the_same_number_of_heartbeats(nodes: int) -> None:
    assert nodes / heartbeat(30.0, nodes) == pytest.approx(SCALE_NODES / 30.0)


def test_the_stretch_is_capped() -> None:
    assert heartbeat(30.0, 10_000) == 30.0 * MAX_STRETCH


def test_the_timeout_spans_the_same_number_of_heartbeats_at_every_size() -> None:
    for nodes in (2, 10, 30, 100, 1000):
        assert liveness_timeout(90.0, 30.0, nodes) / heartbeat(30.0, nodes) == pytest.approx(3.0)


def _table(peers: int, last_seen: float, interval: float | None = 30.0) -> PeerTable:
    table = PeerTable(90.0, interval)
    for index in range(peers):
        table.update({"peer": f"peer{index}"})
        table._peers[f"peer{index}"].last_seen = last_seen
    return table


def test_a_peer_table_counts_the_recently_heard_peers_and_stretches_its_timeout() -> None:
    now = time.time()
    small, large = _table(4, now - 120), _table(29, now - 120)  # heard from two minutes ago
    assert (small.nodes(), large.nodes()) == (5, 30)
    assert (small.heartbeat(), large.heartbeat()) == (30.0, 90.0)
    assert small.alive() == [] and small.get("peer0") is None  # past 90 s: gone in a small cluster
    assert len(large.alive()) == 29 and large.get("peer0") is not None  # within 270 s at 30 nodes


def test_peers_silent_past_the_longest_timeout_do_not_count_towards_the_size() -> None:
    table = _table(29, time.time() - 90.0 * MAX_STRETCH - 1)
    assert table.nodes() == 1 and table.heartbeat() == 30.0


def test_a_table_without_an_interval_keeps_its_fixed_timeout() -> None:
    table = _table(29, time.time() - 120, interval=None)
    assert table.current_timeout() == 90.0 and table.alive() == []


def test_a_record_heard_within_the_unstretched_timeout_is_found_without_counting_the_cluster() -> None:
    """Placement looks peers up once per candidate: counting every peer per lookup made it grow
    with the square of the cluster. A fresh record is alive at any size, so nothing is counted."""
    table = _table(29, time.time() - 10)
    counted: list[int] = []
    nodes = table.nodes
    table.nodes = lambda: counted.append(1) or nodes()  # type: ignore[method-assign]
    assert table.get("peer0") is not None and counted == []
    table._peers["peer0"].last_seen = time.time() - 120  # past 90 s: alive only at the stretched size
    assert table.get("peer0") is not None and counted == [1]
