"""Signed node announcements on gossip topic ``mycel/nodes/1``, and the peer table.

An announcement is the repo's signed envelope (:mod:`storage.privacy.envelope`),
dag-cbor ``{"payload": {...}, "sig": bytes}``; the Ed25519 signature covers a domain tag
plus the canonical encoding of the payload, and the payload's
``peer`` must be the gossip message's origin. Validation runs on the libp2p thread for
every message, so it is cheap and keeps its own small lock-protected state.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from node.identity import NodeIdentity
from node.metrics import Metrics
from node.scheduler import holdings, operator
from storage import dagcbor
from storage.cid import CID
from storage.errors import CodecError
from storage.privacy.envelope import seal, signature_holds

TOPIC = "mycel/nodes/1"
MAX_SIZE = 8192
VERIFIED_KEPT = 256  # accepted announcements whose payload waits for the gossip handler, at most
_DOMAIN = b"mycel-announce-v1:"
_MAX_INT = (1 << 63) - 1
_MAX_WEI = (1 << 256) - 1  # prices are uint256 on the ledger
# The heartbeat stretches with the cluster: up to SCALE_NODES nodes each node re-announces every
# announce_interval; beyond, in proportion to the size (see heartbeat()).
SCALE_NODES = 10
MAX_STRETCH = 10  # at most 10 x announce_interval (300 s by default) between heartbeats


@dataclass(frozen=True)
class _Int:
    low: int
    high: int


@dataclass(frozen=True)
class _Str:
    max_len: int
    pattern: str | None = None


@dataclass(frozen=True)
class _Bytes:
    max_len: int


@dataclass(frozen=True)
class _List:
    item: _Str
    max_items: int


@dataclass(frozen=True)
class _Map:
    fields: dict[str, _Int | _Str | _Bytes]
    required: frozenset[str]


@dataclass(frozen=True)
class _Heads:
    """Stream heads: stream id -> {"seq": int, "cid": CID}, at most ``max_items``."""

    max_items: int


@dataclass(frozen=True)
class _Held:
    """A content summary (node.scheduler.holdings): ``roots`` [[CID, size], ...] and an optional
    Bloom filter ``bloom`` (bytes) with its hash count ``hashes``."""

    max_roots: int
    max_bloom: int


_Field = _Int | _Str | _Bytes | _List | _Map | _Heads | _Held
_STREAM_ID = r"st[a-z2-7]{52}"  # storage.streamentry.STREAM_ID_PATTERN

# Every field a node reads from a peer's announcement, with its type and range: a value that
# passes here is one placement and the peer table can use as is (e.g. a core count that is a
# positive int, a price that is not negative), so one bad announcement cannot break them.
SCHEMA: dict[str, _Field] = {
    "peer": _Str(128, r"[1-9A-HJ-NP-Za-km-z]+"),
    "addrs": _List(_Str(256, r"/[\x21-\x7e]*"), 128),  # a host may have many interfaces; MAX_SIZE binds first
    "region": _Str(64, r"[^\x00-\x1f\x7f]*"),
    "runtimes": _List(_Str(32, r"[a-z0-9._-]+"), 16),
    "capacity": _Map(
        {
            "cpu_cores": _Int(1, 1 << 20),
            "memory_mib": _Int(0, 1 << 40),
            "gpus": _Int(0, 1 << 16),
            "queue": _Int(0, 1 << 20),
        },
        frozenset({"cpu_cores"}),
    ),
    "load": _Map({"running_jobs": _Int(0, 1 << 20)}, frozenset({"running_jobs"})),
    "price": _Int(0, _MAX_WEI),
    "api": _Str(16, r"v[0-9]+"),
    "chain_address": _Str(42, r"0x[0-9a-fA-F]{40}"),
    # the operator key's delegation to this peer ID (node.scheduler.operator); checked in verify()
    "operator": _Map({"id": _Str(128, r"[1-9A-HJ-NP-Za-km-z]+"), "sig": _Bytes(64)}, frozenset({"id", "sig"})),
    "env": _Str(64, r"[0-9a-f]{64}"),  # sha256 of the agent environment (its list: GET /v1/env)
    "seq": _Int(0, _MAX_INT),
    "time": _Int(0, _MAX_INT),
    # heads of the streams this node is the origin of or replicates (origins first, 24 in all), so
    # placement knows where their bytes are; a replica's head has the same two keys, unmarked, since
    # validators before it refuse any other key (node.streams.service.StreamService.heads)
    "streams": _Heads(24),
    # what it holds, so placement finds the inputs with no question per job (node.scheduler.holdings)
    "held": _Held(holdings.MAX_ROOTS, holdings.BLOOM_BITS // 8),
    # the plain-HTTP base URL of its bulk CAR path (node.bulk): peers ask it for a ticket over libp2p first
    "car": _Str(128, r"http://[A-Za-z0-9.\-]{1,64}(:[0-9]{1,5})?|http://\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?"),
}
REQUIRED = frozenset(SCHEMA) - {"chain_address", "operator", "streams", "env", "held", "car"}


class AnnouncementError(ValueError):
    """Why an announcement was refused: ``str()`` is the metric's reason, ``detail`` says which field."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _check(name: str, rule: _Field, value: Any) -> None:
    """Raise AnnouncementError("invalid") unless ``value`` fits ``rule``."""
    if isinstance(rule, _Int):
        # bool is an int to Python but never a count or a price
        if not isinstance(value, int) or isinstance(value, bool) or not rule.low <= value <= rule.high:
            raise AnnouncementError("invalid", f"{name} must be an integer in [{rule.low}, {rule.high}]")
    elif isinstance(rule, _Str):
        if not isinstance(value, str) or len(value) > rule.max_len:
            raise AnnouncementError("invalid", f"{name} must be a string of at most {rule.max_len} characters")
        if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
            raise AnnouncementError("invalid", f"{name} must match {rule.pattern}")
    elif isinstance(rule, _Bytes):
        if not isinstance(value, bytes) or len(value) > rule.max_len:
            raise AnnouncementError("invalid", f"{name} must be at most {rule.max_len} bytes")
    elif isinstance(rule, _Heads):
        if not isinstance(value, dict) or len(value) > rule.max_items:
            raise AnnouncementError("invalid", f"{name} must be a map of at most {rule.max_items} stream heads")
        for stream, head in value.items():
            if not isinstance(stream, str) or not re.fullmatch(_STREAM_ID, stream):
                raise AnnouncementError("invalid", f"{name} keys must be stream ids")
            if not isinstance(head, dict) or set(head) != {"seq", "cid"} or not isinstance(head["cid"], CID):
                raise AnnouncementError("invalid", f"{name}.{stream} must be a map of seq and cid (a CID)")
            _check(f"{name}.{stream}.seq", _Int(1, _MAX_INT), head["seq"])
    elif isinstance(rule, _Held):
        _check_held(name, rule, value)
    elif isinstance(rule, _List):
        if not isinstance(value, list) or len(value) > rule.max_items:
            raise AnnouncementError("invalid", f"{name} must be a list of at most {rule.max_items} items")
        for item in value:
            _check(f"{name}[]", rule.item, item)
    else:
        if not isinstance(value, dict):
            raise AnnouncementError("invalid", f"{name} must be a map")
        unknown = set(value) - set(rule.fields)
        missing = rule.required - set(value)
        if unknown or missing:
            raise AnnouncementError("invalid", f"{name} has unknown {sorted(unknown)} or lacks {sorted(missing)}")
        for key, item in value.items():
            _check(f"{name}.{key}", rule.fields[key], item)


def _check_held(name: str, rule: _Held, value: Any) -> None:
    if not isinstance(value, dict) or set(value) - {"roots", "bloom", "hashes"} or "roots" not in value:
        raise AnnouncementError("invalid", f"{name} must be a map of roots and, optionally, bloom and hashes")
    roots = value["roots"]
    if not isinstance(roots, list) or len(roots) > rule.max_roots:
        raise AnnouncementError("invalid", f"{name}.roots must be a list of at most {rule.max_roots} roots")
    for item in roots:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], CID):
            raise AnnouncementError("invalid", f"{name}.roots items must be [CID, size]")
        _check(f"{name}.roots[].size", _Int(0, holdings.MAX_SIZE), item[1])
    if ("bloom" in value) != ("hashes" in value):
        raise AnnouncementError("invalid", f"{name}.bloom and {name}.hashes go together")
    if "bloom" in value:
        bloom = value["bloom"]
        if not isinstance(bloom, bytes) or not 1 <= len(bloom) <= rule.max_bloom:
            raise AnnouncementError("invalid", f"{name}.bloom must be 1 to {rule.max_bloom} bytes")
        _check(f"{name}.hashes", _Int(1, 16), value["hashes"])


def validate(payload: dict[str, Any]) -> None:
    """Check every field of a payload against SCHEMA: "malformed" when a required field is
    missing, "invalid" when a field is unknown or of the wrong type, size or range."""
    if REQUIRED - set(payload):
        raise AnnouncementError("malformed", f"missing {sorted(REQUIRED - set(payload))}")
    unknown = set(payload) - set(SCHEMA)
    if unknown:
        raise AnnouncementError("invalid", f"unknown field(s) {sorted(unknown)}")
    for key, value in payload.items():
        _check(key, SCHEMA[key], value)


def sign(identity: NodeIdentity, payload: dict[str, Any]) -> bytes:
    return seal(identity.sign, _DOMAIN, payload)


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
    validate(payload)
    if origin is not None and payload["peer"] != origin:
        raise AnnouncementError("wrong_origin")
    if not signature_holds(payload["peer"], _DOMAIN, payload, signature):
        raise AnnouncementError("bad_signature")
    stated = payload.get("operator")
    if stated is not None and not operator.is_valid(payload["peer"], stated["id"], stated["sig"]):
        raise AnnouncementError("bad_operator", f"operator {stated['id']} did not sign a delegation to this node")
    return payload


class AnnouncementValidator:
    """The gossip validator: signature, freshness (sequence numbers), size, shape.

    Each announcement is verified here once: the payload of one it accepts is kept for the
    gossip handler to :meth:`take` (keyed by the message's bytes), so the handler does not
    decode it and check its signature a second time. The validator runs on the libp2p thread
    and the handler on the asyncio one, hence the lock; at most VERIFIED_KEPT payloads wait
    (one gossip delivers is taken at once; one it drops after validating is forgotten in time).
    """

    def __init__(self, metrics: Metrics, own_peer: str) -> None:
        self._metrics = metrics
        self._own = own_peer
        self._lock = threading.Lock()
        self._last_seq: dict[str, int] = {}
        self._verified: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self.verifications = 0  # announcements decoded and signature-checked, in all

    def __call__(self, origin: str, data: bytes) -> bool:
        try:
            self.verifications += 1
            payload = verify(data, origin)
            with self._lock:
                if payload["seq"] <= self._last_seq.get(payload["peer"], -1):
                    raise AnnouncementError("stale")
                self._last_seq[payload["peer"]] = payload["seq"]
                self._verified[data] = payload
                while len(self._verified) > VERIFIED_KEPT:
                    self._verified.popitem(last=False)
        except AnnouncementError as exc:
            self._metrics.inc("gossip_rejected_total", reason=str(exc))
            return False
        self._metrics.inc("gossip_accepted_total")
        return True

    def take(self, origin: str, data: bytes) -> dict[str, Any] | None:
        """The payload this validator accepted for ``data`` from ``origin`` (handed over once), or None."""
        with self._lock:
            payload = self._verified.pop(data, None)
        return payload if payload is not None and payload["peer"] == origin else None


def heartbeat(interval: float, nodes: int) -> float:
    """Seconds between one node's heartbeat announcements in a cluster of ``nodes`` (itself
    included): ``interval`` up to SCALE_NODES nodes, then in proportion to the size, up to
    MAX_STRETCH times ``interval``.

    Every node receives every node's heartbeat, so with a fixed period each node's idle cost grew
    with the cluster (N / interval announcements a second to verify and forward). Stretched, it
    stays at SCALE_NODES / interval a second (1/3 s by default) from 10 to 100 nodes. What a longer
    period costs is liveness: a peer that stops without a word is shown as not alive after the
    stretched timeout (:func:`liveness_timeout`) instead of peer_timeout. Changes (load, peers,
    content, stream heads) are still announced at once, whatever the size.
    """
    return interval * min(float(MAX_STRETCH), max(1.0, nodes / SCALE_NODES))


def liveness_timeout(timeout: float, interval: float, nodes: int) -> float:
    """How long a peer not heard from stays alive: ``timeout`` stretched as :func:`heartbeat` is,
    so it spans as many heartbeats (timeout / interval, 3 by default) at every cluster size."""
    return timeout * heartbeat(interval, nodes) / interval


@dataclass
class PeerRecord:
    peer_id: str
    announcement: dict[str, Any]
    last_seen: float = field(default_factory=time.time)


class PeerTable:
    """What this node knows of its peers, from their announcements.

    With ``interval`` (announce_interval) the timeout stretches with the cluster's size as the
    peers' heartbeats do (:func:`liveness_timeout`); the size is this node plus the peers heard
    from within the longest timeout any size gives (older ones are not alive at any size)."""

    def __init__(self, timeout: float, interval: float | None = None) -> None:
        self.timeout = timeout
        self.interval = interval
        self._peers: dict[str, PeerRecord] = {}

    def nodes(self) -> int:
        """This node and the peers it heard from lately: the cluster size its heartbeat uses."""
        if self.interval is None:
            return 1 + len(self._peers)
        cutoff = time.time() - self.timeout * MAX_STRETCH
        return 1 + sum(1 for record in self._peers.values() if record.last_seen >= cutoff)

    def heartbeat(self) -> float:
        """Seconds between this node's heartbeat announcements (``interval``, stretched)."""
        assert self.interval is not None, "a table without an interval has no heartbeat"
        return heartbeat(self.interval, self.nodes())

    def current_timeout(self) -> float:
        """Seconds a peer not heard from stays alive, at the cluster's current size."""
        if self.interval is None:
            return self.timeout
        return liveness_timeout(self.timeout, self.interval, self.nodes())

    def update(self, payload: dict[str, Any]) -> None:
        self._peers[payload["peer"]] = PeerRecord(payload["peer"], payload)

    def get(self, peer: str) -> PeerRecord | None:
        """``peer``'s record if it is alive. A record heard within the unstretched timeout is alive at
        any size, so only an older one pays for counting the cluster (placement asks per candidate)."""
        record = self._peers.get(peer)
        if record is None:
            return None
        age = time.time() - record.last_seen
        return record if age <= self.timeout or age <= self.current_timeout() else None

    def addrs_of(self, peer: str) -> list[str]:
        """The addresses ``peer`` announced (empty if it did not)."""
        record = self._peers.get(peer)
        return [] if record is None else list(record.announcement["addrs"])

    def car_url_of(self, peer: str) -> str | None:
        """The bulk CAR URL ``peer`` announced, if it offers that path."""
        record = self._peers.get(peer)
        url = None if record is None else record.announcement.get("car")
        return str(url) if url else None

    def region_of(self, peer: str) -> str | None:
        """The region ``peer`` announced (a self-declared label), if it announced."""
        record = self._peers.get(peer)
        return None if record is None else str(record.announcement["region"])

    def alive(self) -> list[PeerRecord]:
        cutoff = time.time() - self.current_timeout()
        return [record for record in self._peers.values() if record.last_seen >= cutoff]

    def snapshot(self, connected: set[str]) -> list[dict[str, Any]]:
        now, timeout = time.time(), self.current_timeout()
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
                    "operator": payload["operator"]["id"] if "operator" in payload else "",
                    "env": payload.get("env", ""),
                    "seq": payload["seq"],
                    "last_seen_seconds_ago": round(now - record.last_seen, 3),
                    "alive": now - record.last_seen <= timeout,
                    "connected": record.peer_id in connected,
                }
            )
        return rows
