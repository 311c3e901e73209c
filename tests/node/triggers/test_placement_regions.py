"""Where a stream trigger asking for regions runs: the origin when it is inside them, else the
freshest replica inside them, else a typed refusal naming every holder and why it was passed over."""

from __future__ import annotations

import pytest

from node.triggers.model import TriggerError
from node.triggers.placement import Holder, PlacementRefused, Role, Verdict, choose, parse_regions

STREAM = "st" + "a" * 52
ORIGIN = Holder("12D3KooWOrigin", "eu", 40, Role.ORIGIN, here=True)
FRESH = Holder("12D3KooWFresh", "us", 38)
STALE = Holder("12D3KooWStale", "us", 12)
ASIA = Holder("12D3KooWAsia", "ap", 40)


def test_the_origin_runs_it_when_its_region_is_allowed() -> None:
    placed = choose(STREAM, [STALE, FRESH, ORIGIN, ASIA], ["eu", "us"])
    assert placed.chosen == ORIGIN and placed.head == 40
    assert placed.reason.startswith("the stream's origin in region eu, at the head")
    verdicts = {c.holder.peer: c.verdict for c in placed.considered}
    assert verdicts == {ORIGIN.peer: Verdict.CHOSEN, FRESH.peer: Verdict.BEHIND, STALE.peer: Verdict.BEHIND,
                        ASIA.peer: Verdict.OUTSIDE_REGIONS}  # fmt: skip


def test_the_freshest_replica_in_an_allowed_region_runs_it_when_the_origin_is_outside() -> None:
    placed = choose(STREAM, [ORIGIN, STALE, FRESH], ["us"])
    assert placed.chosen == FRESH
    assert placed.reason.startswith("a replica of the stream in region us, at seq 38, the nearest to head 40")
    assert "fresher holders are outside" in placed.reason
    rows = {row["peer_id"]: row for row in placed.json()["candidates"]}
    assert rows[ORIGIN.peer]["verdict"] == "outside_regions" and rows[ORIGIN.peer]["role"] == "origin"
    assert rows[STALE.peer]["verdict"] == "behind" and "behind 12D3KooWFresh at seq 38" in rows[STALE.peer]["reason"]


def test_the_chosen_peer_confirms_its_role() -> None:
    twin = Holder("12D3KooWTwin", "us", 40)  # at the head, role not announced
    remote = Holder("12D3KooWRemote", "eu", 40)  # the origin, as its announcement shows it: no role
    placed = choose(STREAM, [remote, twin], ["us"])
    assert placed.reason.startswith("a holder of the stream in region us, at the head")
    confirmed = placed.confirmed(Role.REPLICA)
    assert confirmed.chosen.role is Role.REPLICA and confirmed.reason.startswith("a replica of the stream in region us")
    assert {row["peer_id"]: row["role"] for row in confirmed.json()["candidates"]} == {
        remote.peer: "holder",
        twin.peer: "replica",
    }


def test_a_tie_prefers_the_origin_then_this_node() -> None:
    assert choose(STREAM, [ASIA, ORIGIN], []).chosen == ORIGIN  # no regions: any holder, the origin first
    here = Holder("12D3KooWZzz", "ap", 40, here=True)
    assert choose(STREAM, [ASIA, here], ["ap"]).chosen == here


def test_no_holder_in_the_regions_is_a_typed_refusal_naming_the_holders() -> None:
    with pytest.raises(PlacementRefused) as refused:
        choose(STREAM, [ORIGIN, FRESH], ["ap"])
    error = refused.value
    assert isinstance(error, TriggerError) and error.code == "no_holder_in_regions" and error.status == 409
    assert [c.holder.peer for c in error.considered] == [ORIGIN.peer, FRESH.peer]
    assert all(c.verdict is Verdict.OUTSIDE_REGIONS for c in error.considered)
    assert "12D3KooWOrigin in eu" in str(error) and "subscribe a node" in str(error)
    with pytest.raises(PlacementRefused, match="no node this one knows of holds"):
        choose(STREAM, [], ["ap"])


def test_a_holder_of_unknown_region_is_never_inside_the_regions() -> None:
    unknown = Holder("12D3KooWUnknown", None, 40)
    with pytest.raises(PlacementRefused, match="unknown region"):
        choose(STREAM, [unknown], ["eu"])


@pytest.mark.parametrize("value", ["eu", [1], [""], ["x" * 65], ["r"] * 17])
def test_bad_regions_are_refused(value: object) -> None:
    with pytest.raises(TriggerError) as refused:
        parse_regions(value)
    assert refused.value.code == "bad_regions"


def test_regions_parse() -> None:
    assert parse_regions(None) == () and parse_regions(["eu", "us", "eu"]) == ("eu", "us")


def test_the_placement_matches_its_openapi_schema() -> None:
    from jsonschema import Draft202012Validator

    from node.api.triggers_openapi import SCHEMAS

    schema = SCHEMAS["Trigger"]["properties"]["placement"]
    Draft202012Validator(schema).validate(choose(STREAM, [ORIGIN, STALE, FRESH, ASIA], ["us"]).json())
    Draft202012Validator(SCHEMAS["TriggerRequest"]["properties"]["regions"]).validate(["us", "eu"])
