"""The claim store: one claim per job whatever its state, finished claims kept apart from open ones."""

from __future__ import annotations

import time
from pathlib import Path

from node.settlement.claims import Claim, ClaimState, ClaimStore


def _claim(job: str) -> Claim:
    return Claim(job_id=job, chain_job_id=bytes(32), client="0x" + "11" * 20, node="0x" + "22" * 20,
                 expiry=int(time.time()) + 60, nonce=1, v=27, r=bytes(32), s=bytes(32),
                 amount=10**25, result_cid=b"\x01\x70\x12\x20" + bytes(32), receipt_hash=bytes(32))  # fmt: skip


def test_states_move_between_tables_and_a_job_is_claimed_once(tmp_path: Path) -> None:
    store = ClaimStore(tmp_path / "claims")
    first, second, third = _claim("a"), _claim("b"), _claim("c")
    assert all(store.add(c) for c in (first, second, third))
    first.state, second.state = ClaimState.SETTLED, ClaimState.FAILED
    store.save([first, second])
    assert not store.add(_claim("a"))  # settled: still one claim for the job
    assert store.counts() == {"pending": 1, "submitted": 0, "settled": 1, "failed": 1, "unpaid": 0,
                              "refused_clients": 0}  # fmt: skip
    assert [c.job_id for c in store.in_state(ClaimState.PENDING, ClaimState.SUBMITTED)] == ["c"]
    store.close()
    reopened = ClaimStore(tmp_path / "claims")
    settled = reopened.get("a")
    assert settled is not None and settled.state is ClaimState.SETTLED and settled.amount == 10**25
    assert sorted(c.job_id for c in reopened.all()) == ["a", "b", "c"] and reopened.get("z") is None
    reopened.close()
