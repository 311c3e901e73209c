"""Dataset policies and revocations: what the owner of a private dataset allows, signed by the owner.

A policy names one dataset (its root CID) and says who may hold replicas (peer IDs, or
region labels when the owner says explicitly that they accept self-declared labels),
which agents may run on it (agent CIDs, or agents signed by listed publisher keys:
:mod:`storage.privacy.publisher`), which client keys may submit jobs (besides the
audiences of grants the owner issued, :mod:`storage.privacy.grant`), what may leave a
job (its result only, up to a size, optionally its logs, to whom) and until when it holds.

The owner's key never reaches a node: the SDK signs on the owner's machine and a node
checks. Versions order policies for one dataset: a newer one replaces an older one, and
a revocation of version v withdraws every policy up to v (the dataset then stays locked:
held blocks are served to nobody and no job runs on them). A policy's CID is the CID of
its signed envelope, which is what receipts name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.cid import CID, DAG_CBOR
from storage.privacy import schema
from storage.privacy.envelope import Signer, seal, signature_holds, unseal
from storage.privacy.errors import PrivacyError, Refusal

POLICY_DOMAIN = b"mycel-policy-v1:"
REVOCATION_DOMAIN = b"mycel-revocation-v1:"
MAX_RECORD = 64 << 10  # 256 holders + 256 agents + 256 clients fit well within this


@dataclass(frozen=True)
class Release:
    """What may leave a job run on the dataset: its result DAG only (never the input), up to a size."""

    max_bytes: int = 0  # 0: nothing may leave (every result is withheld)
    logs: bool = False  # the agent's output may leave with the result
    to: tuple[str, ...] = ()  # node peer IDs that may receive the result; empty: the job's requesting node

    def to_record(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes, "logs": self.logs, "to": list(self.to)}

    @classmethod
    def from_record(cls, record: Any) -> Release:
        if not isinstance(record, dict):
            raise schema.bad("release must be a map")
        schema.exact_fields(record, frozenset({"max_bytes", "logs", "to"}))
        return cls(schema.integer(record, "max_bytes"), schema.flag(record, "logs"), schema.keys(record, "to"))


@dataclass(frozen=True)
class Policy:
    dataset: CID
    owner: str  # the owner's Ed25519 key, in peer-ID form
    version: int
    expires: int  # unix seconds
    holders: tuple[str, ...] = ()  # node peer IDs that may hold replicas and run jobs
    holder_regions: tuple[str, ...] = ()  # nodes announcing these regions may hold too (labels, not proof)
    regions_are_self_declared: bool = False  # the owner's explicit yes to the line above
    agents: tuple[CID, ...] = ()  # agent CIDs that may run on the dataset (none listed: none may)
    clients: tuple[str, ...] = ()  # client keys that may submit jobs without a grant
    release: Release = field(default_factory=Release)
    publishers: tuple[str, ...] = ()  # keys whose publisher signature over an agent's CID approves it

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": "policy",
            "dataset": self.dataset,
            "owner": self.owner,
            "version": self.version,
            "expires": self.expires,
            "holders": list(self.holders),
            "holder_regions": list(self.holder_regions),
            "regions_are_self_declared": self.regions_are_self_declared,
            "agents": list(self.agents),
            "clients": list(self.clients),
            "release": self.release.to_record(),
        }
        if self.publishers:  # absent when empty: a policy without publishers keeps its earlier form (and CID)
            record["publishers"] = list(self.publishers)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Policy:
        schema.exact_fields(record, frozenset(Policy._fields()), frozenset({"publishers"}))
        if record["type"] != "policy":
            raise schema.bad("type must be 'policy'")
        policy = cls(
            dataset=schema.cid(record, "dataset"),
            owner=schema.key(record["owner"], "owner"),
            version=schema.integer(record, "version", 1),
            expires=schema.integer(record, "expires"),
            holders=schema.keys(record, "holders"),
            holder_regions=schema.regions(record, "holder_regions"),
            regions_are_self_declared=schema.flag(record, "regions_are_self_declared"),
            agents=schema.cids(record, "agents"),
            clients=schema.keys(record, "clients"),
            release=Release.from_record(record["release"]),
            publishers=schema.keys(record, "publishers"),
        )
        policy.check_regions()
        return policy

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("type", "dataset", "owner", "version", "expires", "holders", "holder_regions",
                "regions_are_self_declared", "agents", "clients", "release")  # fmt: skip

    def check_regions(self) -> None:
        """A policy naming regions must say that it accepts self-declared labels (they prove nothing)."""
        if self.holder_regions and not self.regions_are_self_declared:
            raise schema.bad(
                "holder_regions are self-declared labels that a lying peer can claim; name holders by peer ID, "
                "or set regions_are_self_declared to accept that"
            )

    def sign(self, signer: Signer) -> SignedPolicy:
        self.check_regions()
        data = seal(signer, POLICY_DOMAIN, self.to_record())
        return SignedPolicy(self, data, CID.for_block(data, DAG_CBOR))

    def may_hold(self, peer: str, region: str | None) -> bool:
        """Whether ``peer`` (announcing ``region``, if known) is a replica holder under this policy."""
        if peer in self.holders:
            return True
        return self.regions_are_self_declared and region is not None and region in self.holder_regions


@dataclass(frozen=True)
class SignedPolicy:
    policy: Policy
    data: bytes  # the envelope, as the owner signed it
    cid: CID  # the envelope's CID: what receipts and job answers name


@dataclass(frozen=True)
class Revocation:
    """Withdraws every policy of ``dataset`` up to ``version``; a newer policy can re-open it."""

    dataset: CID
    owner: str
    version: int
    time: int

    def to_record(self) -> dict[str, Any]:
        return {"type": "revocation", "dataset": self.dataset, "owner": self.owner,
                "version": self.version, "time": self.time}  # fmt: skip

    def sign(self, signer: Signer) -> SignedRevocation:
        data = seal(signer, REVOCATION_DOMAIN, self.to_record())
        return SignedRevocation(self, data, CID.for_block(data, DAG_CBOR))


@dataclass(frozen=True)
class SignedRevocation:
    revocation: Revocation
    data: bytes
    cid: CID


def parse(data: bytes, now: float) -> SignedPolicy | SignedRevocation:
    """Decode and check a signed policy or revocation (schema, owner's signature, expiry)."""
    payload, signature = unseal(data, MAX_RECORD)
    kind = payload.get("type")
    if kind == "revocation":
        schema.exact_fields(payload, frozenset({"type", "dataset", "owner", "version", "time"}))
        revocation = Revocation(
            schema.cid(payload, "dataset"),
            schema.key(payload["owner"], "owner"),
            schema.integer(payload, "version", 1),
            schema.integer(payload, "time"),
        )
        if not signature_holds(revocation.owner, REVOCATION_DOMAIN, payload, signature):
            raise PrivacyError(Refusal.FORGED, f"the revocation's signature does not verify for {revocation.owner}")
        return SignedRevocation(revocation, data, CID.for_block(data, DAG_CBOR))
    if kind != "policy":
        raise schema.bad("type must be 'policy' or 'revocation'")
    policy = Policy.from_record(payload)
    if not signature_holds(policy.owner, POLICY_DOMAIN, payload, signature):
        raise PrivacyError(Refusal.FORGED, f"the policy's signature does not verify for owner {policy.owner}")
    if policy.expires <= now:
        raise PrivacyError(Refusal.EXPIRED, f"the policy for {policy.dataset} expired at {policy.expires}")
    return SignedPolicy(policy, data, CID.for_block(data, DAG_CBOR))
