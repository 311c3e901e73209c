"""Signed execution receipts: what ran, on what, with what result, on which node.

A receipt is dag-cbor ``{"receipt": {...}, "sig": bytes}``. The Ed25519 signature
covers a domain tag and the canonical encoding of the inner record, made with the
executing node's key; the record names the node's peer ID, which carries the public
key, so anyone can check a receipt offline. A changed byte anywhere fails.

A job over private data carries ``privacy`` in its receipt: the CIDs of the dataset
policies it ran under, the result cap, the result's size and what was released
(``"result"`` or ``"nothing"``, when the result was over the cap and withheld). Other
receipts have no such key, so their encoding is unchanged.

An invocation of a triggered agent carries ``trigger`` the same way: the trigger's name,
the stream and the seq range of the entries it consumed with their CIDs (empty for a
schedule or an HTTP call), and the state CID the agent left (None: no state), so anyone
holding the stream can replay the fold and check every step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import nacl.signing

from agents.errors import ReceiptError
from storage import dagcbor
from storage.cid import CID
from storage.errors import CodecError
from storage.peerid import peer_id_for, verify_signature

_DOMAIN = b"mycel-receipt-v1:"


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    peak_memory_bytes: int
    wall_seconds: float
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True)
class PrivateRelease:
    """The terms a private job ran under (given by the node) and what the executor released."""

    policies: tuple[CID, ...]
    max_result_bytes: int
    result_bytes: int = 0
    released: str = ""  # "result" or "nothing"

    def record(self) -> dict[str, Any]:
        return {"policies": list(self.policies), "max_result_bytes": self.max_result_bytes,
                "result_bytes": self.result_bytes, "released": self.released}  # fmt: skip


MAX_TRIGGER_ENTRIES = 1024  # entries one invocation may name (the trigger's batch bound is lower)


@dataclass(frozen=True)
class TriggerRun:
    """What one invocation of a triggered agent consumed and the state it left."""

    trigger: str
    stream: str = ""
    first_seq: int = 0  # 0 and 0: no entries (a schedule tick or an HTTP call)
    last_seq: int = 0
    entries: tuple[CID, ...] = ()
    state: CID | None = None

    def record(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "stream": self.stream, "first_seq": self.first_seq,
                "last_seq": self.last_seq, "entries": list(self.entries), "state": self.state}  # fmt: skip


@dataclass(frozen=True)
class Receipt:
    job_id: str
    agent: CID
    inputs: dict[str, CID]
    result: CID | None
    status: str
    runtime: str
    runtime_version: str
    usage: Usage
    started_at: float
    ended_at: float
    node: str
    privacy: PrivateRelease | None = field(default=None)
    trigger: TriggerRun | None = field(default=None)

    def record(self) -> dict[str, Any]:
        # shallow, not asdict(self): asdict deep-copied every CID a trigger run names (256 per batch),
        # ~40% of a batch invocation's node-side time; the encoded record is the same
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NESTED}
        data["inputs"] = dict(self.inputs)
        data["usage"] = asdict(self.usage)
        if self.privacy is not None:
            data["privacy"] = self.privacy.record()
        if self.trigger is not None:
            data["trigger"] = self.trigger.record()
        return data


_NESTED = frozenset({"usage", "privacy", "trigger"})


def sign(receipt: Receipt, signing_key: nacl.signing.SigningKey) -> bytes:
    if peer_id_for(bytes(signing_key.verify_key)) != receipt.node:
        raise ReceiptError("the receipt names a different node than the key signing it")
    record = receipt.record()
    body = dagcbor.encode(record)
    signature = bytes(signing_key.sign(_DOMAIN + body).signature)
    return dagcbor.encode({"receipt": record, "sig": signature})


def verify(receipt_bytes: bytes) -> Receipt:
    """Decode and check a receipt; raises ReceiptError saying what is wrong."""
    try:
        envelope = dagcbor.decode(receipt_bytes)
    except CodecError as exc:
        raise ReceiptError(f"receipt is not valid DAG-CBOR: {exc}") from None
    if not isinstance(envelope, dict) or set(envelope) != {"receipt", "sig"}:
        raise ReceiptError("receipt must be a map of exactly 'receipt' and 'sig'")
    record, signature = envelope["receipt"], envelope["sig"]
    try:
        receipt = _from_record(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReceiptError(f"receipt record is malformed: {exc}") from None
    if not isinstance(signature, bytes) or not verify_signature(
        receipt.node, _DOMAIN + dagcbor.encode(record), signature
    ):
        raise ReceiptError(f"receipt signature does not verify for node {receipt.node}")
    return receipt


def _from_record(record: Any) -> Receipt:
    if not isinstance(record, dict):
        raise TypeError("record is not a map")
    usage = record["usage"]
    inputs = record["inputs"]
    if not isinstance(inputs, dict) or not all(isinstance(v, CID) for v in inputs.values()):
        raise TypeError("inputs must map names to CIDs")
    if not isinstance(record["agent"], CID) or not (record["result"] is None or isinstance(record["result"], CID)):
        raise TypeError("agent and result must be CIDs")
    for key in ("job_id", "status", "runtime", "runtime_version", "node"):
        if not isinstance(record[key], str):
            raise TypeError(f"{key} must be a string")
    return Receipt(
        job_id=record["job_id"],
        agent=record["agent"],
        inputs=dict(inputs),
        result=record["result"],
        status=record["status"],
        runtime=record["runtime"],
        runtime_version=record["runtime_version"],
        usage=Usage(
            float(usage["cpu_seconds"]),
            int(usage["peak_memory_bytes"]),
            float(usage["wall_seconds"]),
            int(usage["bytes_in"]),
            int(usage["bytes_out"]),
        ),
        started_at=float(record["started_at"]),
        ended_at=float(record["ended_at"]),
        node=record["node"],
        privacy=_privacy(record.get("privacy")),
        trigger=_trigger(record.get("trigger")),
    )


def _trigger(value: Any) -> TriggerRun | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"trigger", "stream", "first_seq", "last_seq", "entries", "state"}:
        raise TypeError("trigger must be a map of trigger, stream, first_seq, last_seq, entries, state")
    entries, state = value["entries"], value["state"]
    if (
        not isinstance(entries, list)
        or len(entries) > MAX_TRIGGER_ENTRIES
        or not all(isinstance(e, CID) for e in entries)
    ):
        raise TypeError(f"trigger.entries must be a list of at most {MAX_TRIGGER_ENTRIES} CIDs")
    if not (state is None or isinstance(state, CID)):
        raise TypeError("trigger.state must be a CID or null")
    first, last = value["first_seq"], value["last_seq"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (first, last)):
        raise TypeError("trigger.first_seq and last_seq must be non-negative integers")
    if (last - first + 1 if entries else 0) != len(entries) or (not entries and (first or last)):
        raise TypeError("trigger.entries must name exactly the seqs first_seq..last_seq")
    if not isinstance(value["trigger"], str) or not isinstance(value["stream"], str):
        raise TypeError("trigger.trigger and trigger.stream must be strings")
    return TriggerRun(value["trigger"], value["stream"], first, last, tuple(entries), state)


def _privacy(value: Any) -> PrivateRelease | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"policies", "max_result_bytes", "result_bytes", "released"}:
        raise TypeError("privacy must be a map of policies, max_result_bytes, result_bytes, released")
    policies = value["policies"]
    if not isinstance(policies, list) or not all(isinstance(p, CID) for p in policies):
        raise TypeError("privacy.policies must be a list of CIDs")
    if value["released"] not in ("result", "nothing"):
        raise TypeError("privacy.released must be 'result' or 'nothing'")
    return PrivateRelease(tuple(policies), int(value["max_result_bytes"]), int(value["result_bytes"]),
                          value["released"])  # fmt: skip
