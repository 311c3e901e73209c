"""Publisher signatures: "key P published agent A", so a policy can approve agents by who signed them.

A policy lists agent CIDs, or publishers' Ed25519 keys (``Policy.publishers``), or both. An
agent's CID is the CID of its manifest block, so a signature cannot live inside the bundle
without changing what it signs; it travels beside it instead, in the job's access proof
(:mod:`storage.privacy.access`), as an envelope in the repo's one signed-envelope format
(:mod:`storage.privacy.envelope`) over ``{"type": "publisher", "publisher", "agent"}``. The
holder checks the signature and that it names exactly the agent that runs, so a signature for
one release approves no other (a new version needs a new signature).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.cid import CID
from storage.privacy import schema
from storage.privacy.envelope import Signer, seal, signature_holds, unseal
from storage.privacy.errors import PrivacyError, Refusal

PUBLISHER_DOMAIN = b"mycel-publisher-v1:"
MAX_SIGNATURE = 1 << 10  # a key, a CID and 64 signature bytes fit well within this
MAX_PUBLISHER_SIGNATURES = 4  # per job: an agent signed by a few publishers at most


@dataclass(frozen=True)
class AgentSignature:
    publisher: str  # the publisher's Ed25519 key, in peer-ID form
    agent: CID

    def to_record(self) -> dict[str, Any]:
        return {"type": "publisher", "publisher": self.publisher, "agent": self.agent}

    def sign(self, signer: Signer) -> bytes:
        return seal(signer, PUBLISHER_DOMAIN, self.to_record())


def parse_signature(data: bytes) -> AgentSignature:
    """Schema and signature (by the publisher it names); whether it names the agent that runs is the caller's."""
    payload, signature = unseal(data, MAX_SIGNATURE)
    schema.exact_fields(payload, frozenset({"type", "publisher", "agent"}))
    if payload["type"] != "publisher":
        raise schema.bad("type must be 'publisher'")
    signed = AgentSignature(schema.key(payload["publisher"], "publisher"), schema.cid(payload, "agent"))
    if not signature_holds(signed.publisher, PUBLISHER_DOMAIN, payload, signature):
        raise PrivacyError(Refusal.FORGED, f"the publisher signature does not verify for {signed.publisher}")
    return signed


def approved_by_publisher(publishers: tuple[str, ...], signatures: tuple[bytes, ...], agent: CID) -> str:
    """The listed publisher whose signature over ``agent`` is among ``signatures``; raises with the reason.

    The reason names what is wrong: no signature, a signature over another agent, a key the
    policy does not list, or a signature that does not verify.
    """
    if not signatures:
        raise PrivacyError(
            Refusal.NOT_GRANTED, f"agent {agent} is not approved by the policy (not listed, and no publisher signature)"
        )
    problems: list[str] = []
    for data in signatures[:MAX_PUBLISHER_SIGNATURES]:
        signed = parse_signature(data)
        if signed.agent != agent:
            problems.append(f"a publisher signature is for agent {signed.agent}, not for {agent}")
        elif signed.publisher not in publishers:
            problems.append(f"agent {agent} is signed by publisher {signed.publisher}, whom the policy does not list")
        else:
            return signed.publisher
    raise PrivacyError(Refusal.NOT_GRANTED, f"agent {agent} is not approved by the policy: {'; '.join(problems)}")
