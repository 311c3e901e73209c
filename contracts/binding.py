"""The Ed25519 binding between a node's EVM address and its libp2p peer ID.

The EVM cannot check Ed25519, so the ledger only stores and emits the signature; nodes and
``sdk.verify`` check it off chain against the public key inside the peer ID. The signed
message names the address, the peer ID and the ledger, so a binding cannot be replayed
for another address or on another ledger.
"""

from __future__ import annotations

from contracts.checksum import to_checksum_address
from storage.peerid import verify_signature

_DOMAIN = b"mycel-chain-binding-v1:"


def binding_message(address: str, peer_id: str, contract: str) -> bytes:
    return (
        _DOMAIN
        + bytes.fromhex(to_checksum_address(address)[2:])
        + bytes.fromhex(to_checksum_address(contract)[2:])
        + peer_id.encode()
    )


def binding_is_valid(address: str, peer_id: str, contract: str, signature: bytes) -> bool:
    return verify_signature(peer_id, binding_message(address, peer_id, contract), signature)
