"""The serving gate and the private-block index on a real LMDB registry (no network needed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from node.privacy.gate import ServingGate
from node.privacy.registry import PrivacyRegistry
from storage.cid import CID, RAW
from storage.peerid import peer_id_for
from storage.privacy.errors import PrivacyError, Refusal
from storage.privacy.policy import Policy, Revocation


class Key:
    def __init__(self) -> None:
        self.signing = nacl.signing.SigningKey.generate()
        self.id = peer_id_for(bytes(self.signing.verify_key))

    def sign(self, message: bytes) -> bytes:
        return bytes(self.signing.sign(message).signature)


ROOT, LEAF, SHARED, PUBLIC = (CID.for_block(name.encode(), RAW) for name in ("root", "leaf", "shared", "public"))
HOLDER, OTHER, LABELLED = Key().id, Key().id, Key().id
REGIONS = {LABELLED: "eu-edge", OTHER: "eu"}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[PrivacyRegistry]:
    opened = PrivacyRegistry(tmp_path / "privacy")
    yield opened
    opened.close()


def test_locked_then_opened_to_named_holders_only(registry: PrivacyRegistry) -> None:
    gate, owner = ServingGate(registry, REGIONS.get), Key()
    registry.lock(ROOT, owner.id, [LEAF, SHARED])
    assert gate.may_send(HOLDER, PUBLIC) and gate.may_send(None, PUBLIC)  # public blocks go to anyone
    assert not any(gate.may_send(peer, block) for peer in (HOLDER, OTHER, None) for block in (ROOT, LEAF))
    registry.apply(Policy(ROOT, owner.id, 1, int(time.time()) + 60, holders=(HOLDER,)).sign(owner.sign).data)
    assert gate.may_send(HOLDER, ROOT) and gate.may_send(HOLDER, LEAF)
    assert not gate.may_send(OTHER, LEAF) and not gate.may_send(None, LEAF)  # HTTP is never a holder
    registry.apply(Revocation(ROOT, owner.id, 1, int(time.time())).sign(owner.sign).data)
    assert not gate.may_send(HOLDER, LEAF)


def test_regions_count_only_with_the_owners_explicit_yes(registry: PrivacyRegistry) -> None:
    gate, owner = ServingGate(registry, REGIONS.get), Key()
    registry.lock(ROOT, owner.id, [LEAF])
    labelled = Policy(ROOT, owner.id, 1, int(time.time()) + 60, holder_regions=("eu-edge",),
                      regions_are_self_declared=True)  # fmt: skip
    registry.apply(labelled.sign(owner.sign).data)
    assert gate.may_send(LABELLED, LEAF)  # it announced eu-edge: a label, taken at its word as the owner chose
    assert not gate.may_send(OTHER, LEAF)


def test_a_block_in_two_datasets_follows_either_policy(registry: PrivacyRegistry) -> None:
    gate, first, second = ServingGate(registry, REGIONS.get), Key(), Key()
    registry.lock(ROOT, first.id, [SHARED])
    registry.lock(LEAF, second.id, [SHARED])
    registry.apply(Policy(LEAF, second.id, 1, int(time.time()) + 60, holders=(OTHER,)).sign(second.sign).data)
    assert gate.may_send(OTHER, SHARED) and not gate.may_send(HOLDER, SHARED)
    assert not gate.may_send(OTHER, ROOT)


def test_versions_owners_and_expiry(registry: PrivacyRegistry) -> None:
    owner, stranger = Key(), Key()
    registry.lock(ROOT, owner.id, [])
    v2 = Policy(ROOT, owner.id, 2, int(time.time()) + 60, holders=(HOLDER,)).sign(owner.sign)
    registry.apply(v2.data)
    for data, reason in [
        (Policy(ROOT, owner.id, 1, int(time.time()) + 60).sign(owner.sign).data, Refusal.STALE),
        (Policy(ROOT, stranger.id, 3, int(time.time()) + 60).sign(stranger.sign).data, Refusal.WRONG_OWNER),
        (Policy(ROOT, owner.id, 3, int(time.time()) - 1).sign(owner.sign).data, Refusal.EXPIRED),
    ]:
        with pytest.raises(PrivacyError) as refused:
            registry.apply(data)
        assert refused.value.reason is reason
    state = registry.state(ROOT)
    assert state is not None and state.state == "active" and state.policy == v2
    later = registry.state(ROOT, now=time.time() + 120)
    assert later is not None and later.state == "expired" and later.policy is None
    with pytest.raises(PrivacyError):
        registry.lock(ROOT, stranger.id, [LEAF])  # another key cannot claim the dataset either


def test_a_fetching_holder_learns_only_the_policy_of_what_it_fetches(registry: PrivacyRegistry) -> None:
    gate, owner = ServingGate(registry, REGIONS.get), Key()
    policy = Policy(ROOT, owner.id, 1, int(time.time()) + 60, holders=(HOLDER,)).sign(owner.sign)
    gate.learn_policy(LEAF, policy.data)  # attached to a have answer for other content: ignored
    gate.learn_policy(ROOT, b"\xa0garbage")  # not a policy: ignored
    assert registry.state(LEAF) is None and registry.state(ROOT) is None
    gate.learn_policy(ROOT, policy.data)
    state = registry.state(ROOT)
    assert state is not None and state.policy == policy and gate.policy_for(ROOT) == policy.data
    gate.before_store(ROOT, [LEAF])  # blocks of the replica are indexed before they are written
    assert not gate.may_send(OTHER, LEAF) and gate.may_send(HOLDER, LEAF)
