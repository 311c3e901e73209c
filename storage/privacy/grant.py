"""Grants: "key K may run these agents on dataset D until T", delegable in a chain.

The idea of UCAN, as dag-cbor in the repo's signed-envelope format (no JWTs, no DIDs, and
nothing fetched at run time): a chain is a list of grant envelopes, root first. The root
is issued by the dataset's owner; each later link is issued by the previous link's
audience and names the previous link's CID as its ``proof``. Attenuation only narrows:
a link may not outlive its parent nor allow an agent its parent does not (an empty agent
list means "every agent the policy allows", so a child of a parent that lists agents
must list a subset). The chain's last audience is the client the chain authorises; that
client proves it holds its key by signing the job (:mod:`storage.privacy.access`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.cid import CID, DAG_CBOR
from storage.privacy import schema
from storage.privacy.envelope import Signer, seal, signature_holds, unseal
from storage.privacy.errors import PrivacyError, Refusal

GRANT_DOMAIN = b"mycel-grant-v1:"
MAX_GRANT = 16 << 10
MAX_CHAIN = 8  # delegation depth: bounded so a verifier's work is too


@dataclass(frozen=True)
class Grant:
    issuer: str  # the key that signs this link (the owner for the root)
    audience: str  # the key it delegates to
    dataset: CID
    expires: int
    agents: tuple[CID, ...] = ()  # empty: every agent the dataset's policy allows
    proof: CID | None = None  # the parent link's CID; None only for the root

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": "grant",
            "issuer": self.issuer,
            "audience": self.audience,
            "dataset": self.dataset,
            "expires": self.expires,
            "agents": list(self.agents),
        }
        if self.proof is not None:
            record["proof"] = self.proof
        return record

    def sign(self, signer: Signer) -> bytes:
        return seal(signer, GRANT_DOMAIN, self.to_record())

    def covers(self, agent: CID) -> bool:
        return not self.agents or agent in self.agents


def parse_link(data: bytes) -> Grant:
    """One link's schema and signature (by its own issuer); chain rules are :func:`verify_chain`'s."""
    payload, signature = unseal(data, MAX_GRANT)
    schema.exact_fields(payload, frozenset({"type", "issuer", "audience", "dataset", "expires", "agents"}),
                        frozenset({"proof"}))  # fmt: skip
    if payload["type"] != "grant":
        raise schema.bad("type must be 'grant'")
    grant = Grant(
        schema.key(payload["issuer"], "issuer"),
        schema.key(payload["audience"], "audience"),
        schema.cid(payload, "dataset"),
        schema.integer(payload, "expires"),
        schema.cids(payload, "agents"),
        schema.cid(payload, "proof") if "proof" in payload else None,
    )
    if not signature_holds(grant.issuer, GRANT_DOMAIN, payload, signature):
        raise PrivacyError(Refusal.FORGED, f"a grant's signature does not verify for its issuer {grant.issuer}")
    return grant


def verify_chain(chain: Sequence[bytes], owner: str, dataset: CID, client: str, agent: CID, now: float) -> Grant:
    """Check that ``chain`` lets ``client`` run ``agent`` on ``dataset`` owned by ``owner`` at ``now``.

    Returns the last link; raises PrivacyError with the first reason found (forged, expired,
    wrong_dataset, broken_chain, widened, not_granted, malformed).
    """
    if not chain:
        raise PrivacyError(Refusal.NOT_GRANTED, "no grant was presented")
    if len(chain) > MAX_CHAIN:
        raise schema.bad(f"a grant chain has at most {MAX_CHAIN} links, got {len(chain)}")
    parent: Grant | None = None
    parent_cid: CID | None = None
    for depth, data in enumerate(chain):
        link = parse_link(data)
        if link.dataset != dataset:
            raise PrivacyError(Refusal.WRONG_DATASET, f"link {depth} grants {link.dataset}, not {dataset}")
        if link.expires <= now:
            raise PrivacyError(Refusal.EXPIRED, f"link {depth} expired at {link.expires}")
        if parent is None:
            if link.issuer != owner or link.proof is not None:
                raise PrivacyError(Refusal.BROKEN_CHAIN, f"the first link must be issued by the owner {owner}")
        else:
            if link.issuer != parent.audience or link.proof != parent_cid:
                raise PrivacyError(
                    Refusal.BROKEN_CHAIN, f"link {depth} is not issued by link {depth - 1}'s audience, naming it"
                )
            if link.expires > parent.expires:
                raise PrivacyError(Refusal.WIDENED, f"link {depth} outlives the link it derives from")
            if parent.agents and (not link.agents or not set(link.agents) <= set(parent.agents)):
                raise PrivacyError(Refusal.WIDENED, f"link {depth} allows agents link {depth - 1} does not")
        parent, parent_cid = link, CID.for_block(data, DAG_CBOR)
    assert parent is not None
    if parent.audience != client:
        raise PrivacyError(Refusal.NOT_GRANTED, f"the chain delegates to {parent.audience}, not to client {client}")
    if not parent.covers(agent):
        raise PrivacyError(Refusal.NOT_GRANTED, f"the chain does not cover agent {agent}")
    return parent
