"""The bounds on inbound streams (node.p2p.host.StreamCounts): per peer and in all, and a stream
that ends gives its place back."""

from __future__ import annotations

from node.p2p.host import StreamCounts


def test_streams_are_admitted_within_both_bounds_and_released() -> None:
    counts = StreamCounts()
    assert counts.admit("a", per_peer=2, in_all=3) and counts.admit("a", per_peer=2, in_all=3)
    assert not counts.admit("a", per_peer=2, in_all=3)  # a's own bound
    assert counts.admit("b", per_peer=2, in_all=3)
    assert not counts.admit("c", per_peer=2, in_all=3)  # the bound in all
    assert (counts.of("a"), counts.of("b"), counts.of("c"), counts.total) == (2, 1, 0, 3)
    counts.release("a")
    assert counts.admit("c", per_peer=2, in_all=3)
    for peer in ("a", "b", "c"):
        counts.release(peer)
    assert counts.total == 0 and counts.of("a") == 0 and counts._per_peer == {}
