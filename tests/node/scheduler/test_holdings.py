"""The content summary in announcements: bounded, schema-checked, and a Bloom hit is only a maybe."""

from __future__ import annotations

from typing import Any

import pytest

from node import announce
from node.announce import AnnouncementError
from node.identity import NodeIdentity
from node.scheduler import holdings
from node.scheduler.holdings import Bloom, summarize
from storage.blockstore import Pin
from storage.cid import CID
from tests.support import announcement_payload

ALICE = NodeIdentity.from_seed(bytes(32))


def cid(i: int) -> CID:
    return CID.for_block(f"root {i}".encode())


def pins(count: int) -> list[Pin]:
    return [Pin(cid(i), "", 0, size=i + 1) for i in range(count)]


def test_a_few_pins_are_listed_exactly_and_private_roots_never() -> None:
    private = {cid(3)}
    summary = summarize(pins(5), lambda c: c in private)
    assert summary.bloom is None
    assert summary.size_of(cid(4)) == 5 and summary.size_of(cid(3)) is None
    assert not summary.may_hold(cid(3))


def test_many_pins_list_the_largest_and_filter_all_with_the_stated_false_positive_rate() -> None:
    summary = summarize(pins(1000), lambda c: False)
    assert len(summary.roots) == holdings.MAX_ROOTS
    assert summary.size_of(cid(999)) == 1000  # the largest are the listed ones
    assert summary.bloom is not None
    assert all(summary.may_hold(cid(i)) for i in range(1000 - holdings.MAX_ROOTS))  # no false negative
    false = sum(summary.bloom.may_hold(cid(i)) for i in range(10_000, 20_000))
    assert false / 10_000 < 0.03  # the docstring's ~2 % at 1,000 roots


def test_a_summary_rides_in_a_signed_announcement_and_comes_back_the_same() -> None:
    summary = summarize(pins(100), lambda c: False)
    data = announce.sign(ALICE, announcement_payload(ALICE.peer_id, held=summary.to_announcement()))
    assert len(data) <= announce.MAX_SIZE
    parsed = holdings.from_announcement(announce.verify(data, ALICE.peer_id))
    assert parsed == summary


@pytest.mark.parametrize(
    "held",
    [
        {"roots": [[cid(i), 1] for i in range(holdings.MAX_ROOTS + 1)]},  # too many
        {"roots": [[str(cid(1)), 1]]},  # not a CID
        {"roots": [[cid(1), -1]]},  # negative size
        {"roots": [[cid(1), True]]},  # bool is no size
        {"roots": [[cid(1)]]},
        {"roots": [], "bloom": b"\xff" * 10},  # bloom without its hash count
        {"roots": [], "bloom": b"\xff" * (holdings.BLOOM_BITS // 8 + 1), "hashes": 7},  # oversize
        {"roots": [], "bloom": b"", "hashes": 7},
        {"roots": [], "bloom": b"\xff", "hashes": 99},
        {"roots": [], "extra": 1},
        {"bloom": b"\xff", "hashes": 3},  # no roots
        [],
    ],
)
def test_a_malformed_summary_is_refused(held: Any) -> None:
    with pytest.raises(AnnouncementError) as caught:
        announce.validate(announcement_payload(ALICE.peer_id, held=held))
    assert caught.value.reason == "invalid"


def test_an_empty_filter_holds_nothing() -> None:
    assert not Bloom(b"").may_hold(cid(1))
    assert not Bloom.of([]).may_hold(cid(1))
