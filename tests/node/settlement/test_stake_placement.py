"""A paid job's minimum stake: placement refuses nodes below it and shows every candidate's stake."""

from __future__ import annotations

from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.placement import decide


def _node(name: str, stake: int, address: str = "") -> Candidate:
    return Candidate(peer_id=name, region="eu", runtimes=("wasm",), cpu_cores=4, chain_address=address or "0x" + name,
                     stake=stake)  # fmt: skip


def _context(min_stake: int, paid: bool = True) -> PlacementContext:
    payable = frozenset({"0xfresh", "0xstaked"}) if paid else None
    return PlacementContext("wasm", False, (), 0, payable=payable, min_stake=min_stake)


def test_a_fresh_identity_below_the_minimum_stake_is_refused_with_its_stake_shown() -> None:
    fresh, staked = _node("fresh", 0), _node("staked", 10**18)
    decision = decide([fresh, staked], _context(min_stake=10**17))
    assert decision.chosen == ["staked"]
    reasons = {r["peer_id"]: r for r in decision.reasons}
    assert reasons["fresh"]["verdict"] == "refused"
    assert reasons["fresh"]["reason"] == f"stakes 0 wei, below the {10**17} wei the job asks for"
    assert reasons["fresh"]["stake"] == 0 and reasons["staked"]["stake"] == 10**18


def test_no_minimum_or_an_unpaid_job_ignores_stake() -> None:
    fresh = _node("fresh", 0)
    assert decide([fresh], _context(min_stake=0)).chosen == ["fresh"]
    unpaid = decide([fresh], _context(min_stake=10**17, paid=False))
    assert unpaid.chosen == ["fresh"] and "stake" not in unpaid.reasons[0]
