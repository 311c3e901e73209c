"""The repo's one signed-envelope format, for records signed by an Ed25519 key.

An envelope is dag-cbor ``{"payload": {...}, "sig": bytes}``; the signature covers a
per-record-type domain tag followed by the canonical dag-cbor encoding of the payload,
and the payload names the signer as a libp2p-style peer ID (which carries the public
key), so anyone can check it offline. Node announcements (``node.announce``) use this
module; policies, revocations, grants and job access proofs use it with their own tags,
so a signature made for one kind of record never verifies as another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from storage import dagcbor
from storage.errors import CodecError
from storage.peerid import verify_signature
from storage.privacy.errors import PrivacyError, Refusal

Signer = Callable[[bytes], bytes]  # message -> 64-byte Ed25519 signature (the key stays with its owner)


def seal(sign: Signer, domain: bytes, payload: dict[str, Any]) -> bytes:
    """The envelope bytes of ``payload`` signed under ``domain``."""
    return dagcbor.encode({"payload": payload, "sig": sign(domain + dagcbor.encode(payload))})


def signature_holds(signer: str, domain: bytes, payload: dict[str, Any], signature: bytes) -> bool:
    """True when ``signature`` is ``signer``'s over ``domain`` + the payload's canonical encoding."""
    return verify_signature(signer, domain + dagcbor.encode(payload), signature)


def unseal(data: bytes, max_size: int) -> tuple[dict[str, Any], bytes]:
    """The (payload, signature) of an envelope, shape checked only: the caller validates, then verifies."""
    if len(data) > max_size:
        raise PrivacyError(Refusal.MALFORMED, f"a signed record is at most {max_size} bytes, got {len(data)}")
    try:
        envelope = dagcbor.decode(data)
    except CodecError as exc:
        raise PrivacyError(Refusal.MALFORMED, f"not valid DAG-CBOR: {exc}") from None
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "sig"}:
        raise PrivacyError(Refusal.MALFORMED, "a signed record is a map of exactly 'payload' and 'sig'")
    payload, signature = envelope["payload"], envelope["sig"]
    if not isinstance(payload, dict) or not isinstance(signature, bytes):
        raise PrivacyError(Refusal.MALFORMED, "payload must be a map and sig bytes")
    return payload, signature
