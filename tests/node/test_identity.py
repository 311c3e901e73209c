from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from node.errors import IdentityError
from node.identity import (
    NodeIdentity,
    load_or_create,
    peer_id_for,
    public_key_from_peer_id,
    public_key_protobuf,
    verify_signature,
)
from tests.support import load_json

VECTORS: Any = load_json("libp2p/peer_id_vectors.json")
ED25519 = [k for k in VECTORS["keys"] if k["keyType"] == "Ed25519"]


@pytest.mark.parametrize("case", ED25519, ids=lambda c: c["peerId"])
def test_peer_id_matches_spec_vectors(case: dict[str, str]) -> None:
    identity = NodeIdentity.from_seed(bytes.fromhex(case["ed25519_seed"]))
    assert public_key_protobuf(identity.public_key).hex() == case["publicKeyProtobuf"]
    assert identity.peer_id == case["peerId"]
    assert public_key_from_peer_id(identity.peer_id) == identity.public_key


def test_libp2p_derives_the_same_peer_id() -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    seed = bytes(range(32))
    ours = NodeIdentity.from_seed(seed).peer_id
    theirs = ID.from_pubkey(create_new_key_pair(seed).public_key).to_base58()
    assert ours == theirs


def test_key_created_once_with_mode_0600_and_stable(tmp_path: Path) -> None:
    first = load_or_create(tmp_path / "d")
    assert (os.stat(tmp_path / "d" / "node.key").st_mode & 0o777) == 0o600
    assert load_or_create(tmp_path / "d").peer_id == first.peer_id


def test_wide_permissions_are_refused(tmp_path: Path) -> None:
    load_or_create(tmp_path)
    os.chmod(tmp_path / "node.key", 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create(tmp_path)


def test_wrong_length_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    key.write_bytes(b"short")
    key.chmod(0o600)
    with pytest.raises(IdentityError, match="holds 5 bytes"):
        load_or_create(tmp_path)


def test_signatures_verify_and_forgeries_fail() -> None:
    alice = NodeIdentity.from_seed(bytes(32))
    mallory = NodeIdentity.from_seed(bytes([1]) * 32)
    signature = alice.sign(b"message")
    assert verify_signature(alice.peer_id, b"message", signature)
    assert not verify_signature(alice.peer_id, b"messagE", signature)
    assert not verify_signature(alice.peer_id, b"message", mallory.sign(b"message"))
    assert not verify_signature("not-a-peer-id", b"message", signature)
    assert peer_id_for(alice.public_key) == alice.peer_id
