from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.placement import corrected, decide

MIB = 1 << 20


def node(name: str, **changes: object) -> Candidate:
    base: dict[str, object] = {"peer_id": name, "region": "eu", "runtimes": ("wasm", "python"), "cpu_cores": 2}
    base.update(changes)
    return Candidate(**base)  # type: ignore[arg-type]


def context(**changes: object) -> PlacementContext:
    base: dict[str, object] = {"runtime": "wasm", "needs_gpu": False, "regions": (), "input_bytes": 100 * MIB}
    base.update(changes)
    return PlacementContext(**base)  # type: ignore[arg-type]


def test_data_gravity_picks_the_node_that_holds_the_data() -> None:
    nodes = [node("n1"), node("n2", held_bytes=10 * MIB), node("n3", held_bytes=100 * MIB), node("n4")]
    decision = decide(nodes, context())
    assert decision.chosen == ["n3"]
    assert decision.ranked[0] == "n3" and decision.ranked[1] == "n2"
    top = decision.reasons[0]
    assert top["verdict"] == "chosen" and top["moved_bytes"] == 0 and "would move 0 B" in top["reason"]


def test_a_slow_queue_can_outweigh_a_little_data_but_not_a_lot() -> None:
    busy_holder = node("holder", held_bytes=100 * MIB, queue_wait=0.5)
    idle = node("idle", bandwidth=50e6)  # moving 100 MiB at 50 MB/s costs ~2.1 s
    assert decide([busy_holder, idle], context()).chosen == ["holder"]
    assert decide([busy_holder, idle], context(input_bytes=1 * MIB)).chosen == ["idle"]


def test_sovereignty_refuses_every_node_outside_the_regions_and_explains() -> None:
    nodes = [node("us-1", region="us", held_bytes=100 * MIB), node("ap-1", region="ap")]
    decision = decide(nodes, context(regions=("eu",)))
    assert decision.chosen == []
    assert "may not leave eu" in decision.explanation
    assert all(r["verdict"] == "refused" for r in decision.reasons)


def test_filters_each_give_their_reason() -> None:
    nodes = [
        node("no-wasm", runtimes=("python",)),
        node("full", running_jobs=2),
        node("pricey", price=100),
        node("failed-before"),
        node("ok"),
    ]
    decision = decide(nodes, context(max_price=10, excluded=frozenset({"failed-before"})))
    reasons = {r["peer_id"]: r["reason"] for r in decision.reasons}
    assert decision.chosen == ["ok"]
    assert "no wasm runtime" in reasons["no-wasm"]
    assert "is full" in reasons["full"]
    assert "above the job's maximum" in reasons["pricey"]
    assert "already failed" in reasons["failed-before"]


def test_gpu_jobs_go_to_gpu_nodes_only() -> None:
    decision = decide([node("cpu"), node("gpu", gpus=1)], context(needs_gpu=True))
    assert decision.chosen == ["gpu"]
    assert "no GPU" in next(r["reason"] for r in decision.reasons if r["peer_id"] == "cpu")


def test_redundancy_picks_distinct_nodes_in_rank_order_and_keeps_standbys() -> None:
    nodes = [node(f"n{i}", held_bytes=i * 10 * MIB) for i in range(5)]
    decision = decide(nodes, context(), redundancy=2)
    assert decision.chosen == ["n4", "n3"]
    assert [r["verdict"] for r in decision.reasons] == ["chosen", "chosen", "standby", "standby", "standby"]


def test_ties_are_broken_deterministically() -> None:
    nodes = [node("b"), node("a"), node("c")]
    assert decide(nodes, context()).chosen == decide(list(reversed(nodes)), context()).chosen == ["a"]


def test_no_nodes_known() -> None:
    decision = decide([], context())
    assert decision.chosen == [] and "no nodes known" in decision.explanation


def test_a_paid_job_goes_only_to_nodes_its_payment_authorises() -> None:
    holder = node("holder", held_bytes=100 * MIB, chain_address="0xAAA")
    paid = node("paid", chain_address="0xBBB")
    unchained = node("unchained")
    decision = decide([holder, paid, unchained], context(payable=frozenset({"0xBBB"})))
    assert decision.chosen == ["paid"]  # the data's holder is not authorised: it would work unpaid
    refused = {r["peer_id"]: r["reason"] for r in decision.reasons if r["verdict"] == "refused"}
    assert "not among the nodes the client's payment authorises" in refused["holder"]
    assert "settles on no chain" in refused["unchained"]
    assert decide([holder, paid, unchained], context()).chosen == ["holder"]  # unpaid: anywhere


def test_announcements_and_candidates_are_one_mapping_both_ways() -> None:
    from node.scheduler.candidates import from_announcement, to_announcement

    original = node("n1", gpus=1, price=7, chain_address="0xAAA", memory_mib=2048, running_jobs=1)
    assert from_announcement("n1", to_announcement(original)) == original
    hostile = {"region": 5, "runtimes": "wasm", "capacity": {"cpu_cores": "many", "gpus": -3}, "price": True}
    parsed = from_announcement("h", hostile)
    assert parsed == Candidate("h", "", (), 1)  # nothing odd gets through; defaults instead


def test_the_load_a_placement_round_rereads_is_the_candidates() -> None:
    from node.scheduler.candidates import from_announcement, load_of, to_announcement

    busy = to_announcement(node("n1", running_jobs=3, queue_slots=5))
    hostile = {"load": {"running_jobs": -1}, "capacity": {"queue": "lots"}}
    for announcement in (busy, hostile, {"load": [], "capacity": 7}):
        candidate = from_announcement("n", announcement)
        assert load_of(announcement) == (candidate.running_jobs, candidate.queue_slots)
    assert load_of(busy) == (3, 5)


def test_an_unpaid_job_does_not_go_to_a_node_that_charges() -> None:
    decision = decide([node("priced", price=5, held_bytes=100 * MIB), node("free")], context())
    assert decision.chosen == ["free"]
    assert "attach a payment" in next(r["reason"] for r in decision.reasons if r["peer_id"] == "priced")


def test_an_offer_corrects_the_chosen_nodes_moved_bytes_but_not_its_rank() -> None:
    """The view may lag what a node holds; what its offer says it holds replaces the prediction
    in the explanation, keeping the prediction alongside, and leaves the decision as made."""
    chosen = node("n1", held_bytes=60 * MIB)
    entry = decide([chosen, node("n2")], context()).reasons[0]
    assert entry["peer_id"] == "n1" and entry["moved_bytes"] == 40 * MIB
    fixed = corrected(entry, chosen, context(), 100 * MIB)
    assert fixed["moved_bytes"] == 0 and fixed["predicted_moved_bytes"] == 40 * MIB
    assert fixed["reason"].startswith("holds 100.0 MiB of 100.0 MiB input; would move 0 B")
    assert "by its offer" in fixed["reason"] and (fixed["rank"], fixed["score"]) == (entry["rank"], entry["score"])
    assert corrected(fixed, chosen, context(), 100 * MIB) == fixed  # said again: unchanged
    assert corrected(entry, chosen, context(), 60 * MIB) is entry  # the offer agrees with the view
