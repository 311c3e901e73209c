"""Issue 12: pins made for a remote peer expire, GC reclaims them, and a quota caps them.

The store takes an injectable clock, so expiry is tested by moving the clock, not by sleeping.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import PinQuotaExceededError
from storage.files import add_stream
from storage.leases import LeasePolicy, PinLease
from storage.unixfs.importer import ImportOptions
from tests.support import seeded_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _unpinned(store: BlockStore, seed: str, size: int) -> CID:
    """A multi-block file stored but not pinned (what a fetch leaves before its pin)."""
    import io

    options = ImportOptions(chunk_size=1024)
    return add_stream(store, io.BytesIO(seeded_bytes(seed, size)), pin=False, options=options).cid


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def leased_store(tmp_path: Path, clock: Clock) -> BlockStore:
    return BlockStore(tmp_path / "blocks", clock=clock)


def test_a_remote_pin_carries_its_expiry_and_gc_reclaims_it_after(leased_store: BlockStore, clock: Clock) -> None:
    store = leased_store
    policy = LeasePolicy(ttl_seconds=60, clock=clock)
    remote = _unpinned(store, "remote", 5000)
    local = _unpinned(store, "local", 3000)
    store.pin(remote, "job x", lease=policy.lease_for("12D3KooWPeerA"))
    store.pin(local, "mycel put")
    pins = {pin.name: pin for pin in store.pins()}
    assert pins["job x"].expires == int(clock.now) + 60 and pins["job x"].owner == "12D3KooWPeerA"
    assert pins["mycel put"].expires is None and pins["mycel put"].owner == ""
    assert store.held_for("12D3KooWPeerA") == store.complete_dag_size(remote) > 5000  # leaves and their root

    clock.now += 59  # not yet
    assert store.gc().removed_blocks == 0 and len(store.pins()) == 2

    clock.now += 1
    result = store.gc()
    assert result.expired_pins == 1 and result.removed_blocks > 1
    assert [pin.name for pin in store.pins()] == ["mycel put"]
    assert store.missing_blocks(remote) == [remote]  # every block of the expired DAG went
    assert store.missing_blocks(local) == []  # the local put stays
    assert store.held_for("12D3KooWPeerA") == 0
    assert result.freed_bytes >= 5000


def test_blocks_an_expired_lease_shares_with_a_permanent_pin_stay(leased_store: BlockStore, clock: Clock) -> None:
    store = leased_store
    same = _unpinned(store, "shared", 4000)
    store.pin(same, "local")
    store.pin(same, "job", lease=PinLease("peer", int(clock.now) + 10))  # cannot weaken the permanent pin
    assert [(p.name, p.expires) for p in store.pins()] == [("local", None)]

    other = _unpinned(store, "other", 2000)
    store.pin(other, "job", lease=PinLease("peer", int(clock.now) + 10))
    store.pin(other, "later job", lease=PinLease("peer", int(clock.now) + 100))  # the later expiry wins
    store.pin(other, "earlier job", lease=PinLease("peer", int(clock.now) + 5))
    assert next(p.expires for p in store.pins() if p.cid == other) == int(clock.now) + 100
    store.pin(other, "operator pins it")  # permanent replaces the lease
    clock.now += 1000
    assert store.gc().removed_blocks == 0
    assert {p.name for p in store.pins()} == {"local", "operator pins it"}


def test_a_pin_past_the_peers_quota_is_refused_and_writes_nothing(leased_store: BlockStore, clock: Clock) -> None:
    store = leased_store
    policy = LeasePolicy(ttl_seconds=60, quota_bytes=6000, clock=clock)
    first, second = _unpinned(store, "first", 4000), _unpinned(store, "second", 4000)
    store.pin(first, "job 1", lease=policy.lease_for("greedy"))
    with pytest.raises(PinQuotaExceededError, match="quota of 6000 bytes") as refused:
        store.pin(second, "job 2", lease=policy.lease_for("greedy"))
    size = store.complete_dag_size(first)
    assert (refused.value.held, refused.value.adding) == (size, store.complete_dag_size(second))
    assert not store.is_pinned(second)
    store.pin(second, "job 2", lease=policy.lease_for("someone else"))  # quotas are per peer
    store.pin(first, "job 1 again", lease=policy.lease_for("greedy"))  # renewing its own pin is not counted twice
    assert not policy.exhausted(store.held_for("greedy")) and store.held_for("greedy") == size
    clock.now += 61  # expired leases no longer count
    assert store.held_for("greedy") == 0
    store.pin(second, "job 3", lease=policy.lease_for("greedy"))


def test_lease_pin_converts_only_the_permanent_pin_the_job_made(leased_store: BlockStore, clock: Clock) -> None:
    store = leased_store
    started = int(clock.now)
    result = _unpinned(store, "result", 3000)
    store.pin(result, "result job-1")
    lease = PinLease("peer", int(clock.now) + 60)
    assert not store.lease_pin(result, "result job-2", lease, started)  # not the pin this job wrote
    assert store.lease_pin(result, "result job-1", lease, started)
    assert not store.lease_pin(result, "result job-1", lease, started)  # leased already
    assert store.pins()[0].expires == int(clock.now) + 60
    assert not store.lease_pin(_unpinned(store, "none", 100), "x", lease, started)  # not pinned at all

    # the operator had pinned the same bytes before the job: the job's re-pin must not lease them
    kept = _unpinned(store, "operator's", 2000)
    store.pin(kept, "my file")
    clock.now += 10
    later = int(clock.now)
    store.pin(kept, "result job-3")  # the executor stores an identical result
    assert not store.lease_pin(kept, "result job-3", lease, later)
    assert next(p for p in store.pins() if p.cid == kept).expires is None


def test_an_import_pinned_with_a_lease_holds_it_for_the_peer_in_one_commit(
    leased_store: BlockStore, clock: Clock
) -> None:
    """A job's result stored for a remote requester: leased as it is stored (one synced commit),
    with no quota check (the run is over), and never weakening the operator's permanent pin."""
    import io

    store = leased_store
    lease = PinLease("peer", int(clock.now) + 60, quota=1)  # a quota the result is far over
    writes = store.pin_writes
    result = add_stream(store, io.BytesIO(seeded_bytes("result", 3000)), name="result job-1", lease=lease).cid
    pin = store.pin_of(result)
    assert pin is not None and pin.owner == "peer" and pin.expires == int(clock.now) + 60
    assert store.pin_writes == writes + 1

    kept = _unpinned(store, "operator's", 2000)
    store.pin(kept, "my file")
    options = ImportOptions(chunk_size=1024)
    same = io.BytesIO(seeded_bytes("operator's", 2000))
    again = add_stream(store, same, options=options, name="result job-2", lease=lease).cid
    assert again == kept and next(p for p in store.pins() if p.cid == kept).expires is None


def test_lease_policy_refuses_non_positive_terms() -> None:
    with pytest.raises(ValueError, match="TTL"):
        LeasePolicy(ttl_seconds=0)
    with pytest.raises(ValueError, match="quota"):
        LeasePolicy(quota_bytes=0)
