"""A stream's data policy: where its writer allows its entries to go, signed by the writer (pure, no I/O).

The policy is a record in the repo's one signed envelope (:mod:`storage.privacy.envelope`):
dag-cbor ``{"payload": {...}, "sig": bytes}``, the signature over a domain tag of its own plus
the canonical encoding of ``{type: "stream_policy", stream, writer, name, version, regions,
regions_are_self_declared, time}``. It is checked with the private-data policies' field checks
and vocabulary (:mod:`storage.privacy.schema`: region names, exact fields, bounded lists) and
refused with their typed reasons (:class:`storage.privacy.errors.Refusal`).

Only the stream's writer can sign one: the stream id derives from the writer's key and the name,
so a policy naming the stream under another key does not give its id (``wrong_owner``) and one
naming the writer but signed by another key does not verify (``forged``). Any node checks it
offline, whichever peer relayed it. Like the holder regions of dataset policies, ``regions``
are labels nodes announce about themselves; a policy naming any says so explicitly with
``regions_are_self_declared: true``. A newer version replaces an older one.

Lives in storage, beside :mod:`storage.streamentry`, because the SDK signs it (with the writer
key, which the node never sees) and every node verifies it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import nacl.signing

from storage.cid import CID, DAG_CBOR
from storage.errors import InvalidCIDError
from storage.peerid import peer_id_for
from storage.privacy import schema
from storage.privacy.envelope import seal, signature_holds, unseal
from storage.privacy.errors import PrivacyError, Refusal
from storage.streamentry import NAME_PATTERN, EntryError, stream_id

DOMAIN = b"mycel-stream-policy-v1:"
MAX_RECORD = 2048  # 16 regions of 64 characters and the rest fit well within this
MAX_REGIONS = 16
_FIELDS = frozenset({"type", "stream", "writer", "name", "version", "regions", "regions_are_self_declared", "time"})


@dataclass(frozen=True)
class StreamPolicy:
    stream: str
    writer: str  # the writer's key in peer-ID form (the stream id derives from it)
    name: str
    version: int
    regions: tuple[str, ...] = ()  # nodes announcing one of these may receive entries (empty: any node)
    regions_are_self_declared: bool = False  # the writer's explicit yes: regions are labels, not proof
    time: int = 0  # unix seconds, as the writer stated it

    def to_record(self) -> dict[str, Any]:
        return {"type": "stream_policy", "stream": self.stream, "writer": self.writer, "name": self.name,
                "version": self.version, "regions": list(self.regions),
                "regions_are_self_declared": self.regions_are_self_declared, "time": self.time}  # fmt: skip

    def allows(self, region: str | None) -> bool:
        """Whether a node announcing ``region`` (None: unknown) may receive the stream's entries."""
        return not self.regions or (region is not None and region in self.regions)

    def json(self) -> dict[str, Any]:
        record = self.to_record()
        del record["type"]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StreamPolicy:
        schema.exact_fields(record, _FIELDS)
        if record["type"] != "stream_policy":
            raise schema.bad("type must be 'stream_policy'")
        writer = schema.key(record["writer"], "writer")
        name, stream = record["name"], record["stream"]
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
            raise schema.bad(f"name must be a stream name ({NAME_PATTERN})")
        if not isinstance(stream, str) or len(stream) > 64:
            raise schema.bad("stream must be a stream id")
        regions = schema.regions(record, "regions")
        if len(regions) > MAX_REGIONS:
            raise schema.bad(f"regions lists at most {MAX_REGIONS} regions")
        policy = cls(stream, writer, name, schema.integer(record, "version", 1), regions,
                     schema.flag(record, "regions_are_self_declared"), schema.integer(record, "time"))  # fmt: skip
        policy.check()
        return policy

    def check(self) -> None:
        try:
            derived = stream_id(self.writer, self.name)
        except (EntryError, InvalidCIDError):
            raise schema.bad(f"writer {self.writer[:60]!r} and name {self.name[:60]!r} give no stream id") from None
        if derived != self.stream:
            raise PrivacyError(
                Refusal.WRONG_OWNER,
                f"the policy names stream {self.stream[:60]}, but its writer's key and name give {derived}: "
                "only a stream's writer sets its policy",
            )
        if self.regions and not self.regions_are_self_declared:
            raise schema.bad(
                "regions are self-declared labels that a lying node can claim: set regions_are_self_declared "
                "to accept that"
            )


@dataclass(frozen=True)
class SignedStreamPolicy:
    policy: StreamPolicy
    data: bytes  # the envelope, as the writer signed it
    cid: CID


def sign_policy(
    key: nacl.signing.SigningKey, name: str, regions: tuple[str, ...] | list[str], version: int = 1,
    stamp: int | None = None,
) -> SignedStreamPolicy:  # fmt: skip
    """The writer's signed policy for stream ``name``: entries go only to nodes announcing ``regions``."""
    writer = peer_id_for(bytes(key.verify_key))
    policy = StreamPolicy(stream_id(writer, name), writer, name, version, tuple(dict.fromkeys(regions)),
                          bool(regions), int(time.time()) if stamp is None else stamp)  # fmt: skip
    policy = StreamPolicy.from_record(policy.to_record())  # the same checks a node makes: a bad region fails here
    data = seal(lambda message: bytes(key.sign(message).signature), DOMAIN, policy.to_record())
    return SignedStreamPolicy(policy, data, CID.for_block(data, DAG_CBOR))


def parse_policy(data: bytes) -> SignedStreamPolicy:
    """Decode and check a signed stream policy: schema, stream id, the writer's signature.

    Raises :class:`PrivacyError`: ``malformed``, ``wrong_owner`` (not the stream's writer) or ``forged``."""
    if not isinstance(data, bytes):
        raise schema.bad("a stream policy is the bytes of a signed record")
    payload, signature = unseal(data, MAX_RECORD)
    policy = StreamPolicy.from_record(payload)
    if not signature_holds(policy.writer, DOMAIN, payload, signature):
        raise PrivacyError(Refusal.FORGED, f"the stream policy's signature does not verify for writer {policy.writer}")
    return SignedStreamPolicy(policy, data, CID.for_block(data, DAG_CBOR))
