"""Stream entries: single-writer, hash-linked, Ed25519-signed log records (pure, no I/O).

An entry travels in the repo's signed-record envelope (the same shape as receipts and
node announcements): dag-cbor ``{"entry": {...}, "sig": bytes}``, the signature over a
domain tag plus the canonical encoding of the inner record. The record is
``{stream, writer, name, seq, prev, payload | payload_cid, time}``: ``writer`` is the
writer's peer ID (it carries the public key), ``stream`` is derived from the writer's key
and ``name``, so anyone holding the bytes can check an entry offline, with no node in the
loop. An entry's CID is the CID of its envelope bytes (dag-cbor, sha2-256), and ``prev``
names the previous entry's CID, so a verified head vouches for the whole chain.

Lives in storage, like peer IDs, because the node (which stores and serves entries) and
the SDK (which signs them with a key the node never sees) both need exactly this code.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import nacl.signing

from storage import dagcbor
from storage.cid import CID, DAG_CBOR
from storage.errors import CodecError, InvalidCIDError
from storage.peerid import peer_id_for, public_key_from_peer_id, verify_signature

DOMAIN = b"mycel-stream-v1:"
_ID_DOMAIN = b"mycel-stream-id-v1:"
MAX_INLINE = 16 << 10  # payload bytes carried in the entry itself; larger payloads go by CID
MAX_ENTRY = MAX_INLINE + 1024  # a whole signed entry, envelope included
MAX_SEQ = (1 << 63) - 1
NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
STREAM_ID_PATTERN = r"st[a-z2-7]{52}"
_FIELDS = frozenset({"stream", "writer", "name", "seq", "prev", "time"})


class EntryError(ValueError):
    """An entry that cannot be accepted; ``reason`` is a stable code, ``str()`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def stream_id(writer: str, name: str) -> str:
    """The stream id of ``name`` written by the key inside peer ID ``writer``."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise EntryError("malformed", f"a stream name matches {NAME_PATTERN}, got {name[:80]!r}")
    key = public_key_from_peer_id(writer)
    digest = hashlib.sha256(_ID_DOMAIN + key + name.encode()).digest()
    return "st" + base64.b32encode(digest).decode().lower().rstrip("=")


def is_stream_id(text: str) -> bool:
    return bool(re.fullmatch(STREAM_ID_PATTERN, text))


@dataclass(frozen=True)
class Entry:
    """One verified entry: its record's fields, its CID and the exact signed bytes."""

    stream: str
    writer: str
    name: str
    seq: int
    prev: CID | None
    payload: bytes | None
    payload_cid: CID | None
    time: int  # milliseconds since the epoch, as the writer stated it
    cid: CID
    raw: bytes

    def summary(self) -> dict[str, Any]:
        """The JSON view the API and the CLI show (the raw bytes travel separately)."""
        return {
            "seq": self.seq,
            "cid": str(self.cid),
            "prev": str(self.prev) if self.prev else None,
            "time": self.time,
            "payload_cid": str(self.payload_cid) if self.payload_cid else None,
            "size": len(self.payload) if self.payload is not None else None,
        }


def sign_entry(
    key: nacl.signing.SigningKey,
    name: str,
    seq: int,
    prev: CID | None,
    payload: bytes | CID,
    time_ms: int,
) -> bytes:
    """The signed envelope bytes of one entry (payloads over MAX_INLINE must be passed as a CID)."""
    writer = peer_id_for(bytes(key.verify_key))
    record: dict[str, Any] = {
        "stream": stream_id(writer, name),
        "writer": writer,
        "name": name,
        "seq": seq,
        "prev": prev,
        "time": time_ms,
    }
    if isinstance(payload, CID):
        record["payload_cid"] = payload
    else:
        if len(payload) > MAX_INLINE:
            raise EntryError("oversize", f"an inline payload is at most {MAX_INLINE} bytes; store it and pass its CID")
        record["payload"] = payload
    signature = bytes(key.sign(DOMAIN + dagcbor.encode(record)).signature)
    return dagcbor.encode({"entry": record, "sig": signature})


def verify_entry(raw: bytes) -> Entry:
    """Decode and check one entry: shape, bounds, stream id and signature (EntryError if not)."""
    if len(raw) > MAX_ENTRY:
        raise EntryError("oversize", f"a signed entry is at most {MAX_ENTRY} bytes (got {len(raw)})")
    try:
        envelope = dagcbor.decode(raw)
    except CodecError as exc:
        raise EntryError("malformed", f"an entry is not valid DAG-CBOR: {exc}") from None
    if not isinstance(envelope, dict) or set(envelope) != {"entry", "sig"}:
        raise EntryError("malformed", "an entry is a map of exactly 'entry' and 'sig'")
    record, signature = envelope["entry"], envelope["sig"]
    if not isinstance(record, dict) or not isinstance(signature, bytes):
        raise EntryError("malformed", "'entry' must be a map and 'sig' bytes")
    keys = set(record)
    if keys not in (_FIELDS | {"payload"}, _FIELDS | {"payload_cid"}):
        raise EntryError("malformed", f"an entry has exactly {sorted(_FIELDS)} and one of payload, payload_cid")
    writer, name, seq, prev, stamp = record["writer"], record["name"], record["seq"], record["prev"], record["time"]
    if not isinstance(writer, str) or not isinstance(name, str):
        raise EntryError("malformed", "writer and name must be strings")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
        raise EntryError("malformed", f"seq must be an integer in [1, {MAX_SEQ}]")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or not 0 <= stamp <= MAX_SEQ:
        raise EntryError("malformed", "time must be a non-negative integer (milliseconds)")
    if not (prev is None or isinstance(prev, CID)) or (prev is None) != (seq == 1):
        raise EntryError("malformed", "prev is the previous entry's CID, and null only for seq 1")
    payload, payload_cid = record.get("payload"), record.get("payload_cid")
    if "payload" in record and not isinstance(payload, bytes):
        raise EntryError("malformed", "payload must be bytes")
    if "payload_cid" in record and not isinstance(payload_cid, CID):
        raise EntryError("malformed", "payload_cid must be a CID")
    try:
        derived = stream_id(writer, name)
    except InvalidCIDError:
        raise EntryError("malformed", f"writer {writer[:80]!r} is not an Ed25519 peer ID") from None
    if record["stream"] != derived:
        named = str(record["stream"])[:80]
        raise EntryError("wrong_stream", f"the entry names stream {named}, its key and name give {derived}")
    if not verify_signature(writer, DOMAIN + dagcbor.encode(record), signature):
        raise EntryError("bad_signature", f"the entry's signature does not verify for writer {writer}")
    return Entry(
        stream=derived,
        writer=writer,
        name=name,
        seq=seq,
        prev=prev,
        payload=payload,
        payload_cid=payload_cid,
        time=stamp,
        cid=CID.for_block(raw, DAG_CBOR),
        raw=raw,
    )
