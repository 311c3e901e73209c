"""libp2p peer IDs for Ed25519 keys, and checking a signature against one.

Lives in storage because receipts (agents/), announcements (node/) and offline
verification (sdk/) all need it and storage is what they share: a peer ID is an
identity multihash, plain content addressing.
"""

from __future__ import annotations

import functools

import nacl.exceptions
import nacl.signing
from multiformats import multibase

from storage.errors import InvalidCIDError
from storage.varint import encode_uvarint

_ED25519_KEY_TYPE = 1
_ED25519_MULTIHASH_PREFIX = b"\x00\x24\x08\x01\x12\x20"


class InvalidPeerIDError(InvalidCIDError):
    """Not an Ed25519 libp2p peer ID."""


def public_key_protobuf(public_key: bytes) -> bytes:
    """libp2p's PublicKey message: Type=Ed25519, Data=32 bytes."""
    return b"\x08" + encode_uvarint(_ED25519_KEY_TYPE) + b"\x12" + encode_uvarint(len(public_key)) + public_key


@functools.lru_cache(maxsize=4096)
def peer_id_for(public_key: bytes) -> str:
    """Base58btc peer ID: an identity multihash of the protobuf key (36 bytes, so not hashed).

    Cached like :func:`public_key_from_peer_id`: signing a stream entry names its writer, and the
    base58 encode (~5 ms in ``multiformats``) was ~3/4 of the cost of signing one."""
    encoded = public_key_protobuf(public_key)
    return str(multibase.encode(b"\x00" + encode_uvarint(len(encoded)) + encoded, "base58btc"))[1:]


@functools.lru_cache(maxsize=4096)
def public_key_from_peer_id(peer_id: str) -> bytes:
    """The Ed25519 public key inside an Ed25519 peer ID.

    Cached: a pure function of the string, and its base58 decode (pure Python in ``multiformats``)
    was ~2/3 of verifying a stream entry, twice per entry, for the same few writers. A bad ID
    raises and is not cached; the cache holds at most 4096 IDs (~0.5 MiB)."""
    try:
        multihash = multibase.decode("z" + peer_id)
    except Exception:
        raise InvalidPeerIDError(f"{peer_id!r} is not a libp2p peer ID") from None
    if len(multihash) != len(_ED25519_MULTIHASH_PREFIX) + 32 or not multihash.startswith(_ED25519_MULTIHASH_PREFIX):
        raise InvalidPeerIDError(f"{peer_id!r} is not an Ed25519 peer ID")
    return bytes(multihash[len(_ED25519_MULTIHASH_PREFIX) :])


def verify_signature(peer_id: str, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is the Ed25519 signature of ``message`` by ``peer_id``'s key."""
    try:
        nacl.signing.VerifyKey(public_key_from_peer_id(peer_id)).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, InvalidPeerIDError, ValueError, TypeError):
        return False
    return True
