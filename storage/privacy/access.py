"""Job access proofs, and the one decision "may this job run on this private dataset".

A client submitting a job over private data signs ``{"type": "access", "client", "job",
"requester", "expires", "grants"}`` with its own key: ``job`` is :func:`job_subject`, the
CID of what runs (agent, inputs, arguments), so the proof cannot be moved to another
computation; ``requester`` is the node the client submits through, the only peer an
executor runs the job for (peers are authenticated by libp2p), so a node that saw the
proof cannot replay it to have the result sent to itself; ``grants`` are the grant
chains (per private dataset) the client relies on; ``publishers`` (optional) are publisher
signatures over the agent (:mod:`storage.privacy.publisher`), for policies that approve
agents by publisher key. The executor recomputes ``job``
itself and checks everything here; it never takes a requester's word for who the client is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage import dagcbor
from storage.cid import CID
from storage.privacy import schema
from storage.privacy.envelope import Signer, seal, signature_holds, unseal
from storage.privacy.errors import PrivacyError, Refusal
from storage.privacy.grant import MAX_CHAIN, verify_chain
from storage.privacy.policy import Policy
from storage.privacy.publisher import MAX_PUBLISHER_SIGNATURES, MAX_SIGNATURE, approved_by_publisher

ACCESS_DOMAIN = b"mycel-access-v1:"
MAX_DATASETS = 16
MAX_ACCESS = 64 << 10  # it travels inside the job spec (offers are at most 256 KiB)


@dataclass(frozen=True)
class Access:
    client: str
    job: CID  # job_subject() of the job
    requester: str  # peer ID of the node the job is submitted through
    expires: int
    grants: dict[str, tuple[bytes, ...]]  # dataset CID (text) -> grant chain, root first
    publishers: tuple[bytes, ...] = ()  # publisher signatures over the agent (absent from the record when none)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"type": "access", "client": self.client, "job": self.job, "requester": self.requester,
                  "expires": self.expires,
                  "grants": {name: list(chain) for name, chain in self.grants.items()}}  # fmt: skip
        if self.publishers:
            record["publishers"] = list(self.publishers)
        return record

    def sign(self, signer: Signer) -> bytes:
        return seal(signer, ACCESS_DOMAIN, self.to_record())


def parse_access(data: bytes) -> Access:
    payload, signature = unseal(data, MAX_ACCESS)
    schema.exact_fields(payload, frozenset({"type", "client", "job", "requester", "expires", "grants"}),
                        frozenset({"publishers"}))  # fmt: skip
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
    publishers = payload.get("publishers", [])
    if (
        not isinstance(publishers, list)
        or len(publishers) > MAX_PUBLISHER_SIGNATURES
        or not all(isinstance(p, bytes) and len(p) <= MAX_SIGNATURE for p in publishers)
    ):
        raise schema.bad(f"publishers must be a list of at most {MAX_PUBLISHER_SIGNATURES} publisher signatures")
    access = Access(
        schema.key(payload["client"], "client"),
        schema.cid(payload, "job"),
        schema.key(payload["requester"], "requester"),
        schema.integer(payload, "expires"),
        chains,
        tuple(publishers),
    )
    if not signature_holds(access.client, ACCESS_DOMAIN, payload, signature):
        raise PrivacyError(Refusal.FORGED, f"the job's access proof does not verify for client {access.client}")
    return access


@dataclass(frozen=True)
class Authorized:
    client: str
    via: str  # "policy" (the client is listed) or "grant" (a valid chain delegates to it)


def job_subject(agent: CID, inputs: dict[str, CID], args: Sequence[str]) -> CID:
    """The CID an access proof signs: what runs on the data (the SDK and the executor compute it alike)."""
    return dagcbor.encode_with_cid({"agent": agent, "inputs": dict(inputs), "args": list(args)})[0]


def authorize(
    policy: Policy, access_data: bytes | None, job: CID, agent: CID, requester: str, now: float
) -> Authorized:
    """Whether ``requester`` may have job ``job`` (running ``agent``) run on ``policy``'s dataset.

    Raises PrivacyError with the reason when not.
    """
    if policy.expires <= now:
        raise PrivacyError(Refusal.EXPIRED, f"the policy for {policy.dataset} expired at {policy.expires}")
    if agent not in policy.agents and not policy.publishers:
        raise PrivacyError(Refusal.NOT_GRANTED, f"agent {agent} is not approved by the policy of {policy.dataset}")
    if access_data is None:
        raise PrivacyError(
            Refusal.NOT_GRANTED, f"{policy.dataset} is private: the job must carry an access proof signed by the client"
        )
    access = parse_access(access_data)
    if agent not in policy.agents:  # the policy names publishers: a listed one must have signed this agent
        approved_by_publisher(policy.publishers, access.publishers, agent)
    if access.job != job:
        raise PrivacyError(Refusal.FORGED, "the access proof was signed for another job (agent, inputs or args)")
    if access.requester != requester:
        raise PrivacyError(Refusal.FORGED, f"the access proof names requester {access.requester}, not {requester}")
    if access.expires <= now:
        raise PrivacyError(Refusal.EXPIRED, f"the access proof expired at {access.expires}")
    if policy.release.to and requester not in policy.release.to:
        raise PrivacyError(Refusal.NOT_GRANTED, f"the policy releases results only to {list(policy.release.to)}")
    if access.client in policy.clients:
        return Authorized(access.client, "policy")
    chain = access.grants.get(str(policy.dataset))
    if chain is None:
        raise PrivacyError(
            Refusal.NOT_GRANTED, f"client {access.client} is not listed by the policy and shows no grant for it"
        )
    verify_chain(chain, policy.owner, policy.dataset, access.client, agent, now)
    return Authorized(access.client, "grant")
