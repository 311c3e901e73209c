"""Who runs a node: an operator key's signed delegation to the node's peer ID.

Redundancy is worth something only across independent parties, and a peer ID is free to
mint: one person can run five nodes. So a node may state its *operator*: the peer-ID-style
identifier of an Ed25519 operator key, with that key's signature over a domain tag and the
node's peer ID. The node carries the pair in its signed announcement (``operator``:
``{"id": ..., "sig": ...}``); every receiving node checks the signature before the
announcement enters its peer table (:mod:`node.announce`), so a node cannot claim to
belong to someone else's operator (which would push that operator's honest nodes out of a
redundant job's set). Nodes of one operator count once towards a job's redundancy; a node
that states none counts as its own operator.

What this does not buy: an operator who wants to count several times simply states no
operator (or mints several operator keys). Distinct operators are distinct *claimed*
identities; see README "Threat model" for what that means for redundancy.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from node.errors import IdentityError
from storage.peerid import peer_id_for, verify_signature

DOMAIN = b"mycel-operator-v1:"
SEED_SIZE = 32
KEY_FILE = "operator.key"  # in the data dir, when the config names no other file


@dataclass(frozen=True)
class Delegation:
    """An operator's statement that ``node`` is one of its nodes."""

    operator: str  # the operator key as a peer-ID-style string
    node: str
    sig: bytes

    def to_announcement(self) -> dict[str, object]:
        return {"id": self.operator, "sig": self.sig}


def delegate(operator_key: nacl.signing.SigningKey, node: str) -> Delegation:
    """Sign ``node`` into the operator's set (done once, at the node's start)."""
    operator = peer_id_for(bytes(operator_key.verify_key))
    return Delegation(operator, node, bytes(operator_key.sign(DOMAIN + node.encode()).signature))


def is_valid(node: str, operator: str, sig: bytes) -> bool:
    """Whether ``sig`` is ``operator``'s delegation to ``node`` (False on any malformed part)."""
    try:
        return verify_signature(operator, DOMAIN + node.encode(), sig)
    except (ValueError, TypeError):
        return False


def operator_of(peer_id: str, operator: str) -> str:
    """The operator a node counts as: the one it proved, else itself."""
    return operator or peer_id


def load_key(path: Path) -> nacl.signing.SigningKey:
    """The operator key (a 32-byte Ed25519 seed, mode 0600), refused with a fix if unusable."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        seed = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read operator key {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise IdentityError(f"operator key {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")
    if len(seed) != SEED_SIZE:
        raise IdentityError(f"operator key {path} holds {len(seed)} bytes, not a {SEED_SIZE}-byte Ed25519 seed")
    return nacl.signing.SigningKey(seed)


def write_key(path: Path, key: nacl.signing.SigningKey) -> None:
    """Write an operator key file (0600); used to give several nodes one operator."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(bytes(key))


def node_delegation(configured: str, data_dir: Path, node: str) -> Delegation | None:
    """The node's delegation: from the configured key file, else ``<data_dir>/operator.key``
    when it exists, else None (the node states no operator)."""
    path = Path(os.path.expanduser(configured)) if configured else data_dir / KEY_FILE
    if not configured and not path.exists():
        return None
    return delegate(load_key(path), node)
