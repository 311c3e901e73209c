"""The node's identity: one Ed25519 key, from which its libp2p peer ID derives.

The key file holds the 32-byte seed, mode 0600, created on first start. A file with
other permissions or another length is refused rather than silently replaced: the
peer ID is the node's identity everywhere (announcements, receipts, the chain).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from node.errors import IdentityError
from storage.peerid import peer_id_for, public_key_from_peer_id, public_key_protobuf, verify_signature

KEY_FILE = "node.key"
SEED_SIZE = 32

__all__ = [
    "NodeIdentity",
    "load_or_create",
    "peer_id_for",
    "public_key_from_peer_id",
    "public_key_protobuf",
    "verify_signature",
]


@dataclass(frozen=True)
class NodeIdentity:
    signing_key: nacl.signing.SigningKey

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self.signing_key.sign(message).signature)

    @classmethod
    def from_seed(cls, seed: bytes) -> NodeIdentity:
        if len(seed) != SEED_SIZE:
            raise IdentityError(f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(seed)}")
        return cls(nacl.signing.SigningKey(seed))


def load_or_create(data_dir: Path) -> NodeIdentity:
    """Load the node key from ``data_dir``, creating it (mode 0600) on first start."""
    path = data_dir / KEY_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise IdentityError(f"cannot create data directory {data_dir}: {exc.strerror}") from None
    if not path.exists():
        identity = NodeIdentity(nacl.signing.SigningKey.generate())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(identity.seed)
        return identity
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise IdentityError(
            f"key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` and start again"
        )
    seed = path.read_bytes()
    if len(seed) != SEED_SIZE:
        raise IdentityError(
            f"key file {path} holds {len(seed)} bytes, not a {SEED_SIZE}-byte Ed25519 seed; "
            "restore the right file (deleting it creates a new identity with a new peer ID)"
        )
    return NodeIdentity.from_seed(seed)
