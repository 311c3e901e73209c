"""Operator identity, distinct-operator placement, result judging and spot-check settings."""

from __future__ import annotations

import os
from pathlib import Path

import nacl.signing
import pytest

from node import announce
from node.announce import AnnouncementError
from node.errors import IdentityError
from node.identity import NodeIdentity
from node.scheduler import operator
from node.scheduler.candidates import Candidate, PlacementContext, from_announcement, to_announcement
from node.scheduler.job import Checks, JobError
from node.scheduler.placement import decide
from node.scheduler.reputation import PENALTY_SECONDS, Event, Observation, ReputationPolicy, assess
from node.scheduler.verify import Referee, Verified, judge
from storage.cid import CID
from storage.peerid import peer_id_for
from tests.support import announcement_payload

NODE = NodeIdentity(nacl.signing.SigningKey.generate())
OTHER_NODE = NodeIdentity(nacl.signing.SigningKey.generate())
OPERATOR = nacl.signing.SigningKey.generate()
MALLORY = nacl.signing.SigningKey.generate()
OPERATOR_ID = peer_id_for(bytes(OPERATOR.verify_key))


def _announced(identity: NodeIdentity, stated: dict[str, object]) -> bytes:
    return announce.sign(identity, announcement_payload(identity.peer_id, operator=stated))


def test_a_delegation_verifies_for_its_node_only() -> None:
    delegation = operator.delegate(OPERATOR, NODE.peer_id)
    assert delegation.operator == OPERATOR_ID
    assert operator.is_valid(NODE.peer_id, OPERATOR_ID, delegation.sig)
    assert not operator.is_valid(OTHER_NODE.peer_id, OPERATOR_ID, delegation.sig)  # not a blank cheque
    assert not operator.is_valid(NODE.peer_id, OPERATOR_ID, b"\x00" * 64)
    assert not operator.is_valid(NODE.peer_id, "not-a-peer-id", delegation.sig)


def test_an_announcement_with_a_forged_delegation_is_refused() -> None:
    """A node claiming someone else's operator (signed by a key that is not the operator's)."""
    forged = operator.delegate(MALLORY, NODE.peer_id).sig
    with pytest.raises(AnnouncementError, match="bad_operator"):
        announce.verify(_announced(NODE, {"id": OPERATOR_ID, "sig": forged}), NODE.peer_id)
    stolen = operator.delegate(OPERATOR, OTHER_NODE.peer_id).sig  # another node's real delegation, replayed
    with pytest.raises(AnnouncementError, match="bad_operator"):
        announce.verify(_announced(NODE, {"id": OPERATOR_ID, "sig": stolen}), NODE.peer_id)


MALFORMED = [{"id": OPERATOR_ID}, {"id": OPERATOR_ID, "sig": "text"}, {"id": 5, "sig": b""}, {"id": "0OIl", "sig": b""}]


@pytest.mark.parametrize("stated", MALFORMED)
def test_a_malformed_operator_field_is_invalid(stated: dict[str, object]) -> None:
    with pytest.raises(AnnouncementError, match="invalid"):
        announce.verify(_announced(NODE, stated), NODE.peer_id)


def test_a_valid_delegation_reaches_the_candidate_and_back() -> None:
    delegation = operator.delegate(OPERATOR, NODE.peer_id)
    payload = announce.verify(_announced(NODE, delegation.to_announcement()), NODE.peer_id)
    candidate = from_announcement(NODE.peer_id, payload)
    assert candidate.operator == OPERATOR_ID and candidate.operator_id == OPERATOR_ID
    assert to_announcement(candidate)["operator"] == {"id": OPERATOR_ID, "sig": delegation.sig}
    plain = from_announcement(OTHER_NODE.peer_id, announcement_payload(OTHER_NODE.peer_id))
    assert plain.operator == "" and plain.operator_id == OTHER_NODE.peer_id  # its own operator


def test_the_operator_key_file_is_checked(tmp_path: Path) -> None:
    assert operator.node_delegation("", tmp_path, NODE.peer_id) is None  # none stated
    operator.write_key(tmp_path / operator.KEY_FILE, OPERATOR)
    found = operator.node_delegation("", tmp_path, NODE.peer_id)
    assert found is not None and found.operator == OPERATOR_ID
    os.chmod(tmp_path / operator.KEY_FILE, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        operator.node_delegation("", tmp_path, NODE.peer_id)
    with pytest.raises(IdentityError, match="cannot read"):
        operator.node_delegation(str(tmp_path / "missing.key"), tmp_path, NODE.peer_id)


def _node(name: str, **changes: object) -> Candidate:
    base: dict[str, object] = {"peer_id": name, "region": "eu", "runtimes": ("wasm",), "cpu_cores": 2}
    return Candidate(**{**base, **changes})  # type: ignore[arg-type]


CONTEXT = PlacementContext("wasm", False, (), 1 << 20)


def test_redundancy_takes_one_node_per_operator() -> None:
    nodes = [_node("a1", operator="op-a", held_bytes=1 << 20), _node("a2", operator="op-a", held_bytes=1 << 20),
             _node("b")]  # fmt: skip
    decision = decide(nodes, CONTEXT, 2)
    assert decision.chosen == ["a1", "b"]  # a2 ranks second but counts for op-a, already taken
    standby = next(r for r in decision.reasons if r["peer_id"] == "a2")
    assert standby["verdict"] == "standby" and "same operator as a1" in standby["reason"]
    assert decide(nodes[:2], CONTEXT, 2).chosen == ["a1"]  # one operator cannot make k=2


def test_a_recorded_mismatch_drops_a_node_below_others() -> None:
    caught = assess([Observation("liar", Event.DISAGREED, 100.0)], 100.0, ReputationPolicy())
    liar, honest = _node("liar", held_bytes=1 << 20, standing=caught), _node("honest")
    decision = decide([liar, honest], CONTEXT)
    assert decision.chosen == ["honest"]
    entry = next(r for r in decision.reasons if r["peer_id"] == "liar")
    assert entry["mismatches"] == 1 and entry["score"] <= -PENALTY_SECONDS[Event.DISAGREED]
    assert "1 recorded mismatch" in entry["reason"]


def _verified(peer: str, content: bytes) -> Verified:
    return Verified(peer, CID.for_block(content, 0x55), b"receipt of " + peer.encode(), CID.for_block(b"r", 0x71))


def test_judging_results() -> None:
    same = {"a": _verified("a", b"x"), "b": _verified("b", b"x")}
    assert judge(same, frozenset()).referee is Referee.UNANIMOUS
    split = {"a": _verified("a", b"x"), "b": _verified("b", b"y")}
    tie = judge(split, frozenset())
    assert tie.referee is Referee.UNRESOLVED and tie.result is None and tie.blamed == ("a", "b")
    trusted = judge(split, frozenset({"b"}))
    assert trusted.referee is Referee.TRUSTED and trusted.agreed == ("b",) and trusted.blamed == ("a",)
    three = {**split, "c": _verified("c", b"y")}
    majority = judge(three, frozenset())
    assert majority.referee is Referee.MAJORITY and majority.agreed == ("b", "c") and majority.blamed == ("a",)
    torn = judge(three, frozenset({"a", "b"}))  # trusted nodes that disagree among themselves decide nothing
    assert torn.referee is Referee.UNRESOLVED and torn.result is None


def test_spot_check_settings_are_validated_and_drawn_once() -> None:
    assert Checks.requested(0.25, [NODE.peer_id], lambda: 0.1).drawn
    assert not Checks.requested(0.25, [NODE.peer_id], lambda: 0.3).drawn
    assert not Checks.requested(0, [], lambda: 0.0).drawn
    for spot_check, trusted in ((0.5, []), (1.5, [NODE.peer_id]), (True, [NODE.peer_id]), (0.5, ["no/slash"]),
                                (0.5, [NODE.peer_id] * 17), (0.5, "peer")):  # fmt: skip
        with pytest.raises(JobError):
            Checks.requested(spot_check, trusted)
