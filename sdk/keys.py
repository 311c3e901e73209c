"""Ed25519 keys of data owners and clients, kept on their own machines: they sign, nodes only check.

An owner key signs dataset policies, revocations and grants; a client key signs the access
proof of each job it submits over private data. Keys are named everywhere by their
libp2p-style peer ID form (``12D3KooW...``), the same form nodes are named by. A key file
holds the 32-byte seed as hex, mode 0600, created on first use.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing

from sdk.errors import UsageError
from storage.cid import CID, DAG_CBOR
from storage.peerid import peer_id_for
from storage.privacy.grant import Grant, parse_link
from storage.privacy.policy import Policy, Release, Revocation, SignedPolicy, SignedRevocation
from storage.privacy.publisher import AgentSignature

DEFAULT_OWNER_KEY = Path("~/.mycelnet/owner.key")


@dataclass(frozen=True)
class PolicyTerms:
    """What a policy allows, before it names its dataset (known only once the data is stored)."""

    holders: tuple[str, ...] = ()  # node peer IDs that may hold replicas and run jobs
    agents: tuple[CID, ...] = ()  # agent CIDs that may run on the data
    clients: tuple[str, ...] = ()  # client keys that may submit jobs (others need a grant)
    max_result_bytes: int = 0  # the largest result that may leave a job (0: none)
    release_logs: bool = False
    release_to: tuple[str, ...] = ()  # requesting nodes results may go to (empty: the job's requester)
    holder_regions: tuple[str, ...] = ()  # self-declared labels: see regions_are_self_declared
    regions_are_self_declared: bool = False  # must be True to use holder_regions: a lying peer can claim one
    ttl_seconds: int = 30 * 24 * 3600
    version: int = 1
    publishers: tuple[str, ...] = ()  # keys whose signature over an agent approves it (Keypair.sign_agent)

    def for_dataset(self, dataset: CID, owner: str, now: float | None = None) -> Policy:
        return Policy(
            dataset=dataset,
            owner=owner,
            version=self.version,
            expires=int((time.time() if now is None else now) + self.ttl_seconds),
            holders=tuple(self.holders),
            holder_regions=tuple(self.holder_regions),
            regions_are_self_declared=self.regions_are_self_declared,
            agents=tuple(self.agents),
            clients=tuple(self.clients),
            release=Release(self.max_result_bytes, self.release_logs, tuple(self.release_to)),
            publishers=tuple(self.publishers),
        )


@dataclass(frozen=True)
class Keypair:
    signing_key: nacl.signing.SigningKey = field(repr=False)

    @classmethod
    def generate(cls) -> Keypair:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str] = DEFAULT_OWNER_KEY) -> Keypair:
        file = Path(os.path.expanduser(os.fspath(path)))
        if not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(bytes(nacl.signing.SigningKey.generate()).hex() + "\n")
        if file.stat().st_mode & 0o077:
            raise UsageError(f"key file {file} is readable by others: chmod 600 {file}")
        try:
            return cls(nacl.signing.SigningKey(bytes.fromhex(file.read_text().strip())))
        except ValueError:
            raise UsageError(f"key file {file} does not hold a 32-byte hex Ed25519 seed") from None

    @property
    def id(self) -> str:
        return peer_id_for(bytes(self.signing_key.verify_key))

    def sign(self, message: bytes) -> bytes:
        return bytes(self.signing_key.sign(message).signature)

    def policy(self, dataset: CID, terms: PolicyTerms) -> SignedPolicy:
        return terms.for_dataset(dataset, self.id).sign(self.sign)

    def sign_agent(self, agent: CID) -> bytes:
        """This key's publisher signature over ``agent``: approves it where a policy lists this key as publisher."""
        return AgentSignature(self.id, agent).sign(self.sign)

    def revoke(self, dataset: CID, version: int) -> SignedRevocation:
        return Revocation(dataset, self.id, version, int(time.time())).sign(self.sign)

    def grant(
        self,
        audience: str,
        dataset: CID,
        ttl_seconds: int,
        agents: Sequence[CID] = (),
        parent: Sequence[bytes] = (),
    ) -> tuple[bytes, ...]:
        """A grant chain ending in ``audience``: a root grant (owner) or ``parent`` extended by one link.

        The link may only narrow its parent: the node refuses a chain whose link outlives its
        parent or allows an agent its parent does not.
        """
        expires = int(time.time() + ttl_seconds)
        proof = CID.for_block(parent[-1], DAG_CBOR) if parent else None
        if parent:
            last = parse_link(parent[-1])
            if last.audience != self.id:
                raise UsageError(f"the parent grant is for {last.audience}, not for this key {self.id}")
            expires = min(expires, last.expires)
        link = Grant(self.id, audience, dataset, expires, tuple(agents), proof).sign(self.sign)
        return (*parent, link)
