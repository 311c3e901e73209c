"""Stream policies on a node: where a stream's writer lets its entries go, and its enforcement.

A policy (:mod:`storage.streampolicy`) is signed by the stream's writer and checked here before
it is kept, whichever peer or client brought it, so a relaying node cannot set one, change one
or widen one: it can only withhold it (see below). A newer version replaces an older one.

Enforced on the stream protocol (``/mycel/stream/1.0.0``), by :class:`PolicyGate`:

* serving: a peer asking for entries of a stream whose policy names regions gets them only if
  the region it announces (its signed announcement, as this node's peer table holds it) is one
  of them; otherwise one ``{"op": "refused", "reason": "outside_regions", "detail"}`` frame
  (a node from before this reads it as a malformed answer: it pulls nothing, and logs it);
* replicating: a node does not subscribe to (or keep pulling) a stream whose policy excludes
  its own region (StreamRefused ``outside_regions``, 403 on the API).

A replica learns the policy from the peer it pulls from, with ``{"op": "policy", "stream"}``
on the same protocol (reply ``{"op": "policy", "record": signed bytes or b""}``), at subscribe,
every POLICY_REFRESH_SECONDS after, and at once after its source refused a pull: a policy set
before the first entry (``mycel stream create --region``) binds every replica from the start; a
newer, narrower one binds the origin at once and the replicas within that time. A node from
before this answers that request with an empty reply, which reads as "no policy known there".
The origin holds the policy the writer posted to it (``POST /v1/streams/{id}/policy``).

What it cannot do: a region is a label a node announces about itself, so a node that lies
about its region gets the entries; and a holder can withhold the policy from a replica pulling
from it (never forge one), so a replica pulling from a dishonest holder may not know it. The
origin is where the writer put the entries: it is not checked against the policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from node.errors import NetworkError
from node.streams.model import Refusal, StreamRefused
from node.streams.protocol import PROTOCOL, HolderRefused, Since, StreamProtocolError, Watch, Watching, parse_request
from node.streams.store import StreamStore
from storage import dagcbor
from storage.cid import CID
from storage.privacy.errors import PrivacyError
from storage.privacy.errors import Refusal as PolicyRefusal
from storage.streamentry import is_stream_id
from storage.streampolicy import MAX_RECORD, SignedStreamPolicy, parse_policy

log = logging.getLogger("mycelnet.streams")

POLICY_REFRESH_SECONDS = 10.0  # a replica asks its source for a newer policy this often
MAX_FETCHED = 1024  # policies of streams not held here, remembered (trigger placement asks for them)
FETCH_SECONDS = 5.0
MAX_POLICY_REQUEST = 256


class Requester(Protocol):
    async def request(self, peer_id: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]: ...


def encode_policy_request(stream: str) -> bytes:
    return dagcbor.encode({"op": "policy", "stream": stream})


def encode_refused(reason: str, detail: str) -> list[bytes]:
    return [dagcbor.encode({"op": "refused", "reason": reason, "detail": detail[:300]})]


def parse_policy_request(request: bytes) -> str | None:
    """The stream a ``policy`` request names; None when ``request`` is not one (a ``since``, or junk)."""
    try:
        record = dagcbor.decode_message(request, MAX_POLICY_REQUEST, "a policy request", StreamProtocolError)
    except StreamProtocolError:
        return None
    if record.get("op") != "policy" or set(record) != {"op", "stream"}:
        return None
    stream = record["stream"]
    return stream if isinstance(stream, str) and is_stream_id(stream) else None


def parse_policy_reply(frames: list[bytes], stream: str) -> SignedStreamPolicy | None:
    """A holder's answer to a policy request: the verified policy of ``stream``, or None (none there,
    or a node from before policies, which answers an empty reply). A bad record is a NetworkError."""
    if not frames:
        return None
    if len(frames) != 1:
        raise NetworkError("a policy reply is one frame of at most one signed record")
    message = dagcbor.decode_message(frames[0], MAX_RECORD + 64, "a policy reply", NetworkError)
    if set(message) != {"op", "record"} or message["op"] != "policy":
        raise NetworkError("a policy reply is {op: policy, record}")
    if not isinstance(message["record"], bytes):
        raise NetworkError("a policy reply's record is bytes")
    if not message["record"]:
        return None
    try:
        signed = parse_policy(message["record"])
    except PrivacyError as exc:
        raise NetworkError(f"the holder sent a stream policy that does not check: {exc}") from None
    if signed.policy.stream != stream:
        raise NetworkError(f"the holder sent the policy of {signed.policy.stream} for {stream}")
    return signed


async def ask_policy(network: Requester, peer: str, stream: str) -> SignedStreamPolicy | None:
    """``peer``'s policy of ``stream``, verified; None when it has none, is from before policies, or
    fails to answer well (logged: a policy not learnt leaves the one held, if any, in force)."""
    try:
        frames = await network.request(peer, PROTOCOL, encode_policy_request(stream), timeout=FETCH_SECONDS)
        return parse_policy_reply(frames, stream)
    except NetworkError as exc:
        log.info("stream %s: no policy from %s: %s", stream, peer, exc)
        return None


def newer(held: SignedStreamPolicy | None, candidate: SignedStreamPolicy) -> bool:
    """Whether ``candidate`` replaces ``held``; StaleError-like PrivacyError for an older or rival one."""
    if held is None:
        return True
    if candidate.cid == held.cid:
        return False
    if candidate.policy.version <= held.policy.version:
        what = "an older" if candidate.policy.version < held.policy.version else "another policy at the same"
        raise PrivacyError(
            PolicyRefusal.STALE,
            f"{what} version ({candidate.policy.version}) than the one held ({held.policy.version}) for "
            f"{held.policy.stream}: sign a newer version",
        )
    return True


class PolicyGate:
    """The stream policies this node holds, and the checks the stream service makes with them."""

    def __init__(
        self,
        store: StreamStore,
        region_of: Callable[[str], str | None] = lambda peer: None,
        own_region: Callable[[], str] = lambda: "local",
    ) -> None:
        self.store = store
        self.region_of = region_of  # the region a peer announced (self-declared), None if unknown
        self.own_region = own_region
        self._held: dict[str, SignedStreamPolicy | None] = {}  # read from the store once
        self._fetched: OrderedDict[str, SignedStreamPolicy] = OrderedDict()  # of streams not held here
        self._refreshed: dict[str, float] = {}  # stream -> when its source was last asked (monotonic)
        self.refused = 0  # pulls refused by a policy (served here, or refused to this node), since start

    # -- the policy of a stream ----------------------------------------------------------
    def get(self, stream: str) -> SignedStreamPolicy | None:
        """The policy this node holds (or learnt) for ``stream`` (blocking on the first read)."""
        if stream not in self._held:
            raw = self.store.policy(stream)
            self._held[stream] = parse_policy(raw) if raw is not None else None
        return self._held[stream] or self._fetched.get(stream)

    def may_send_snapshot(self, peer: str | None, cid: CID) -> bool:
        """Whether block ``cid`` may go to ``peer`` as far as stream policies go (blocking: a read).

        Retention's snapshots (:mod:`node.streams.compaction`) hold a stream's older entries; of a
        stream whose writer bound it to regions, one goes only to a peer announcing one of them,
        like its live entries. Every other block is not this gate's business (True)."""
        stream = self.store.snapshot_stream(cid)
        if stream is None:
            return True
        signed = self.get(stream)
        if signed is None or not signed.policy.regions:
            return True
        if peer is not None and signed.policy.allows(self.region_of(peer)):
            return True
        self.refused += 1
        return False

    def withholds(self, cid: CID) -> bool:
        """True for a snapshot of a region-bound stream: kept out of the public content summary."""
        stream = self.store.snapshot_stream(cid)
        signed = self.get(stream) if stream is not None else None
        return signed is not None and bool(signed.policy.regions)

    def peek(self, stream: str) -> SignedStreamPolicy | None:
        """What :meth:`get` gives, from memory only (None also when it was never read): for the loop."""
        return self._held.get(stream) or self._fetched.get(stream)

    def put(self, data: bytes) -> tuple[SignedStreamPolicy, bool]:
        """Verify and keep a signed policy (blocking); (the policy, whether it replaced the held one).
        Raises PrivacyError: malformed, forged, wrong_owner, stale."""
        signed = parse_policy(data)
        stream = signed.policy.stream

        def replaces(held_raw: bytes | None) -> bool:
            held = parse_policy(held_raw) if held_raw is not None else None
            return newer(held, signed)

        stored = self.store.put_policy(stream, signed.data, replaces)
        if stored:
            self._held[stream] = signed
            self._fetched.pop(stream, None)
        held = self.get(stream)
        return (held if held is not None else signed), stored

    def learnt(self, signed: SignedStreamPolicy, keep: bool) -> None:
        """A policy a peer sent (verified): kept in the store when this node holds the stream (``keep``),
        else remembered in memory (bounded); an older one than what is held is ignored."""
        try:
            if keep:
                self.put(signed.data)
                return
            held = self.get(signed.policy.stream)
            if newer(held, signed):
                self._fetched[signed.policy.stream] = signed
                self._fetched.move_to_end(signed.policy.stream)
                while len(self._fetched) > MAX_FETCHED:
                    self._fetched.popitem(last=False)
        except PrivacyError as exc:
            log.info("a policy for %s from a peer was not kept: %s", signed.policy.stream, exc)

    # -- serving -------------------------------------------------------------------------
    async def screen(self, peer: str, request: bytes) -> list[bytes] | None:
        """The answer to ``request`` when the policy decides it: the policy itself for a ``policy``
        request, a refusal for a ``since`` or a ``watch`` from a peer outside the regions; None: serve
        it as usual.
        A stream's policy is read from the store once (off the loop), then from memory."""
        asked_policy = parse_policy_request(request)
        if asked_policy is not None:
            signed = await self._cached(asked_policy)
            return [dagcbor.encode({"op": "policy", "record": signed.data if signed is not None else b""})]
        try:
            asked = parse_request(request)
        except StreamProtocolError:
            return None  # the service refuses it as before
        if not isinstance(asked, (Since, Watch)):
            return None  # a head notice: it only makes this node pull from its source, screened there
        stream = asked.stream
        signed = await self._cached(stream)
        if signed is None or not signed.policy.regions:
            return None
        region = self.region_of(peer)
        if signed.policy.allows(region):
            return None
        self.refused += 1
        if isinstance(asked, Watch):
            return Watching(0).frames()  # no head notices either: they would tell the stream's pace
        where = f"announces region {region}" if region is not None else "announced no region here"
        return encode_refused(
            Refusal.OUTSIDE_REGIONS.value,
            f"stream {stream}'s writer allows its entries only in region(s) {', '.join(signed.policy.regions)}; "
            f"peer {peer} {where}",
        )

    async def _cached(self, stream: str) -> SignedStreamPolicy | None:
        if stream not in self._held:
            return await asyncio.to_thread(self.get, stream)
        return self.get(stream)

    # -- replicating ---------------------------------------------------------------------
    def check_own_region(self, stream: str) -> None:
        """StreamRefused ``outside_regions`` if the policy held for ``stream`` excludes this node."""
        signed = self.get(stream)
        if signed is not None and not signed.policy.allows(self.own_region()):
            raise StreamRefused(
                Refusal.OUTSIDE_REGIONS,
                f"stream {stream}'s writer allows its entries only in region(s) {', '.join(signed.policy.regions)}, "
                f"and this node is in region {self.own_region()}: it does not replicate it",
            )

    async def before_pull(self, stream: str, source: str, network: Requester, force: bool = False) -> None:
        """Before a replica pulls ``stream`` from ``source``: learn a newer policy from it (at most every
        POLICY_REFRESH_SECONDS, or now with ``force``), then refuse if the policy excludes this node."""
        now = time.monotonic()
        if force or now - self._refreshed.get(stream, -POLICY_REFRESH_SECONDS) >= POLICY_REFRESH_SECONDS:
            self._refreshed[stream] = now
            signed = await ask_policy(network, source, stream)
            if signed is not None:
                await asyncio.to_thread(self.learnt, signed, True)
        await self._cached(stream)  # read once off the loop; then a check in memory, no thread hop per pull
        self.check_own_region(stream)

    def pull_refused(self, stream: str, source: str, error: StreamProtocolError) -> StreamRefused | None:
        """``error`` parsing a source's answer: StreamRefused ``outside_regions`` if the source refused the
        pull by the stream's policy (this node then asks it for that policy at the next pull), else None."""
        if not isinstance(error, HolderRefused):
            return None
        self._refreshed.pop(stream, None)
        self.refused += 1
        return StreamRefused(Refusal.OUTSIDE_REGIONS, f"peer {source} refused: {error.detail}")

    async def find(self, stream: str, holders: Iterable[str], network: Requester | None) -> SignedStreamPolicy | None:
        """The policy of ``stream``: the one held here, else the newest its holders send (at most 4 asked)."""
        held, here = await asyncio.to_thread(lambda: (self.get(stream), self.store.info(stream) is not None))
        if held is not None or here or network is None:  # held here: the origin has the writer's policy
            return held
        found: SignedStreamPolicy | None = None
        for peer in list(holders)[:4]:
            signed = await ask_policy(network, peer, stream)
            if signed is not None and (found is None or signed.policy.version > found.policy.version):
                found = signed
        if found is not None:
            self.learnt(found, False)
        return found

    def view(self, stream: str) -> dict[str, Any] | None:
        """The policy as the stream info shows it (blocking on the first read)."""
        signed = self.get(stream)
        if signed is None:
            return None
        return {**signed.policy.json(), "cid": str(signed.cid)}
