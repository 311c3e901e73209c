"""Job access proofs, and the one decision "may this job run on this private dataset".

A client submitting a job over private data signs ``{"type": "access", "client", "job",
"grants"}`` with its own key: ``job`` is the CID of the job spec without its access
field, so the proof cannot be moved to another job (other agent, inputs or arguments),
and ``grants`` are the grant chains (one per private input, keyed by dataset) the client
relies on. The executor recomputes ``job`` itself and checks everything here; it never
takes a requester's word for who the client is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.cid import CID
from storage.privacy import schema
from storage.privacy.envelope import Signer, seal, signature_holds, unseal
from storage.privacy.errors import PrivacyError, Refusal
from storage.privacy.grant import MAX_CHAIN, MAX_GRANT, verify_chain
from storage.privacy.policy import Policy

ACCESS_DOMAIN = b"mycel-access-v1:"
MAX_DATASETS = 16
MAX_ACCESS = MAX_DATASETS * MAX_CHAIN * MAX_GRANT // 4 + 4096  # many short chains, or a few long ones


@dataclass(frozen=True)
class Access:
    client: str
    job: CID  # the job spec's CID without its access field
    grants: dict[str, tuple[bytes, ...]]  # dataset CID (text) -> grant chain, root first

    def to_record(self) -> dict[str, Any]:
        return {"type": "access", "client": self.client, "job": self.job,
                "grants": {name: list(chain) for name, chain in self.grants.items()}}  # fmt: skip

    def sign(self, signer: Signer) -> bytes:
        return seal(signer, ACCESS_DOMAIN, self.to_record())


def parse_access(data: bytes) -> Access:
    payload, signature = unseal(data, MAX_ACCESS)
    schema.exact_fields(payload, frozenset({"type", "client", "job", "grants"}))
    if payload["type"] != "access":
        raise schema.bad("type must be 'access'")
    grants = payload["grants"]
    if not isinstance(grants, dict) or len(grants) > MAX_DATASETS:
        raise schema.bad(f"grants must map at most {MAX_DATASETS} dataset CIDs to grant chains")
    chains: dict[str, tuple[bytes, ...]] = {}
    for name, chain in grants.items():
        if not isinstance(chain, list) or len(chain) > MAX_CHAIN or not all(isinstance(g, bytes) for g in chain):
            raise schema.bad(f"the grant chain for {name[:64]} must be a list of at most {MAX_CHAIN} grants")
        chains[name] = tuple(chain)
    access = Access(schema.key(payload["client"], "client"), schema.cid(payload, "job"), chains)
    if not signature_holds(access.client, ACCESS_DOMAIN, payload, signature):
        raise PrivacyError(Refusal.FORGED, f"the job's access proof does not verify for client {access.client}")
    return access


@dataclass(frozen=True)
class Authorized:
    client: str
    via: str  # "policy" (the client is listed) or "grant" (a valid chain delegates to it)


def authorize(policy: Policy, access_data: bytes | None, job: CID, agent: CID, now: float) -> Authorized:
    """Whether the job ``job`` (running ``agent``) may run on ``policy``'s dataset; raises PrivacyError why not."""
    if policy.expires <= now:
        raise PrivacyError(Refusal.EXPIRED, f"the policy for {policy.dataset} expired at {policy.expires}")
    if agent not in policy.agents:
        raise PrivacyError(Refusal.NOT_GRANTED, f"agent {agent} is not approved by the policy of {policy.dataset}")
    if access_data is None:
        raise PrivacyError(
            Refusal.NOT_GRANTED, f"{policy.dataset} is private: the job must carry an access proof signed by the client"
        )
    access = parse_access(access_data)
    if access.job != job:
        raise PrivacyError(Refusal.FORGED, "the access proof was signed for another job spec")
    if access.client in policy.clients:
        return Authorized(access.client, "policy")
    chain = access.grants.get(str(policy.dataset))
    if chain is None:
        raise PrivacyError(
            Refusal.NOT_GRANTED, f"client {access.client} is not listed by the policy and shows no grant for it"
        )
    verify_chain(chain, policy.owner, policy.dataset, access.client, agent, now)
    return Authorized(access.client, "grant")
