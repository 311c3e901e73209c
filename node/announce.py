"""Signed node announcements on gossip topic ``mycel/nodes/1``, and the peer table.

An announcement is dag-cbor ``{"payload": {...}, "sig": bytes}``; the Ed25519 signature
covers a domain tag plus the canonical encoding of the payload, and the payload's
``peer`` must be the gossip message's origin. Validation runs on the libp2p thread for
every message, so it is cheap and keeps its own small lock-protected state.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from node.identity import NodeIdentity, verify_signature
from node.metrics import Metrics
from storage import dagcbor
from storage.errors import CodecError

TOPIC = "mycel/nodes/1"
MAX_SIZE = 8192
_DOMAIN = b"mycel-announce-v1:"
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "peer": str,
    "addrs": list,
    "region": str,
    "runtimes": list,
    "capacity": dict,
    "load": dict,
    "price": int,
    "api": str,
    "seq": int,
    "time": int,
}


class AnnouncementError(ValueError):
    pass


def sign(identity: NodeIdentity, payload: dict[str, Any]) -> bytes:
    body = dagcbor.encode(payload)
    return dagcbor.encode({"payload": payload, "sig": identity.sign(_DOMAIN + body)})


def verify(data: bytes, origin: str | None = None) -> dict[str, Any]:
    """Decode and check an announcement; raises AnnouncementError saying why not."""
    if len(data) > MAX_SIZE:
        raise AnnouncementError("oversize")
    try:
        envelope = dagcbor.decode(data)
    except CodecError:
        raise AnnouncementError("malformed") from None
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "sig"}:
        raise AnnouncementError("malformed")
    payload, signature = envelope["payload"], envelope["sig"]
    if not isinstance(payload, dict) or not isinstance(signature, bytes):
        raise AnnouncementError("malformed")
    for key, kind in _REQUIRED.items():
        if not isinstance(payload.get(key), kind):
            raise AnnouncementError("malformed")
    if origin is not None and payload["peer"] != origin:
        raise AnnouncementError("wrong_origin")
    if not verify_signature(payload["peer"], _DOMAIN + dagcbor.encode(payload), signature):
        raise AnnouncementError("bad_signature")
    return payload


class AnnouncementValidator:
    """The gossip validator: signature, freshness (sequence numbers), size, shape."""

    def __init__(self, metrics: Metrics, own_peer: str) -> None:
        self._metrics = metrics
        self._own = own_peer
        self._lock = threading.Lock()
        self._last_seq: dict[str, int] = {}

    def __call__(self, origin: str, data: bytes) -> bool:
        try:
            payload = verify(data, origin)
            with self._lock:
                if payload["seq"] <= self._last_seq.get(payload["peer"], -1):
                    raise AnnouncementError("stale")
                self._last_seq[payload["peer"]] = payload["seq"]
        except AnnouncementError as exc:
            self._metrics.inc("gossip_rejected_total", reason=str(exc))
            return False
        self._metrics.inc("gossip_accepted_total")
        return True


@dataclass
class PeerRecord:
    peer_id: str
    announcement: dict[str, Any]
    last_seen: float = field(default_factory=time.time)


class PeerTable:
    """What this node knows of its peers, from their announcements."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._peers: dict[str, PeerRecord] = {}

    def update(self, payload: dict[str, Any]) -> None:
        self._peers[payload["peer"]] = PeerRecord(payload["peer"], payload)

    def alive(self) -> list[PeerRecord]:
        cutoff = time.time() - self.timeout
        return [record for record in self._peers.values() if record.last_seen >= cutoff]

    def snapshot(self, connected: set[str]) -> list[dict[str, Any]]:
        now = time.time()
        rows = []
        for record in sorted(self._peers.values(), key=lambda r: r.peer_id):
            payload = record.announcement
            rows.append(
                {
                    "peer_id": record.peer_id,
                    "addrs": payload["addrs"],
                    "region": payload["region"],
                    "runtimes": payload["runtimes"],
                    "capacity": payload["capacity"],
                    "load": payload["load"],
                    "price": payload["price"],
                    "chain_address": payload.get("chain_address", ""),
                    "seq": payload["seq"],
                    "last_seen_seconds_ago": round(now - record.last_seen, 3),
                    "alive": now - record.last_seen <= self.timeout,
                    "connected": record.peer_id in connected,
                }
            )
        return rows
