"""Secure aggregation by pairwise additive masks, in fixed-point arithmetic modulo 2**64.

Every site i turns its update into integers (``encode``: round(x * 2**FRACTION_BITS), two's
complement in uint64) and adds, for every other site j of the round's roster, a mask drawn
from a seed only i and j know: +mask if i's name sorts before j's, -mask otherwise. The seed
is the X25519 shared secret of i's private key and j's public key (libsodium's
crypto_scalarmult: the same for both), hashed with the round's session nonce (fresh for
every group job, a retried round included), so no two masked updates share a mask.
Summing every site's masked update cancels each mask against its twin; the aggregator
learns the sum and nothing about one site's update, which on its own is uniform noise
modulo 2**64. If a site of the roster is missing, its twins do not cancel: the sum is
garbage, so the aggregator refuses to sum anything but the full roster.
"""

from __future__ import annotations

import hashlib

import numpy as np
from nacl.bindings import crypto_scalarmult

FRACTION_BITS = 20  # fixed-point precision: one unit is 2**-20 (~1e-6)
DOMAIN = b"mycel-secagg-v1"


def encode(values: np.ndarray) -> np.ndarray:
    """Real values as fixed-point integers modulo 2**64 (|x| must stay below 2**43)."""
    scaled = np.rint(np.asarray(values, dtype=np.float64) * (1 << FRACTION_BITS))
    if np.any(np.abs(scaled) >= 2.0**63):
        raise ValueError("value too large for fixed point")
    return scaled.astype(np.int64).view(np.uint64)


def decode(total: np.ndarray) -> np.ndarray:
    """A sum of encoded values back to real numbers."""
    return np.asarray(total, dtype=np.uint64).view(np.int64).astype(np.float64) / (1 << FRACTION_BITS)


def pair_mask(secret: bytes, peer_public: bytes, session: bytes, length: int) -> np.ndarray:
    """The mask two sites share for a session: SHAKE-256 of their X25519 secret and the nonce."""
    shared = crypto_scalarmult(secret, peer_public)
    seed = hashlib.sha256(DOMAIN + shared + session).digest()
    return np.frombuffer(hashlib.shake_256(seed).digest(8 * length), dtype="<u8").astype(np.uint64)


def mask(update: np.ndarray, me: str, secret: bytes, roster: dict[str, bytes], session: bytes) -> np.ndarray:
    """This site's encoded update plus every pairwise mask with the other sites of the roster."""
    masked = encode(update)
    for other, public in sorted(roster.items()):
        if other == me:
            continue
        share = pair_mask(secret, public, session, len(masked))
        masked = masked + share if me < other else masked - share  # uint64: wraps modulo 2**64
    return masked


def total(masked: list[np.ndarray]) -> np.ndarray:
    """The sum, modulo 2**64, of every site's masked update (the masks cancel)."""
    out = np.zeros_like(masked[0], dtype=np.uint64)
    for vector in masked:
        out = out + vector
    return out
