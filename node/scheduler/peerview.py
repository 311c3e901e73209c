"""The requester's live view of its peers: what placement ranks by, with no round trip per job.

Announcements (capacity, load, runtimes, region, price, content summary) arrive by gossip
and sit in the peer table; this adds what this node measures itself: the RTT to each
peer, refreshed in the background at most once per RTT_MAX_AGE and only for peers that
placement looked at (an idle node pings nobody), and the bandwidth the block exchange
measured on past fetches. An RTT is the faster of PING_SAMPLES pings in a row: a ping is a
request on a new stream, so the first may carry a dial, and any may wait behind a busy host
(same-site peers measured 0.24-0.73 s on the 2-core planet with one sample); the emulated or
real path is a floor that load only adds to. A peer not measured yet is placed as far as the
farthest peer measured, not at the LAN default: it would otherwise rank ahead of every
measured neighbour until its first ping answered. Parsed content summaries are kept per announcement sequence
number (and candidates per announcement and measurement), so a peer's announcement is
decoded once, not once per job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace

from node.announce import PeerTable
from node.errors import NetworkError
from node.scheduler import holdings
from node.scheduler.candidates import Candidate, from_announcement
from node.scheduler.holdings import Holdings
from storage.cid import CID

log = logging.getLogger("mycelnet.jobs")

RTT_MAX_AGE = 60.0  # seconds a measured RTT is used before it is measured again
PING_TIMEOUT = 2.0
PING_SAMPLES = 2  # pings in a row per measurement; the fastest is kept
MAX_CONFIRM = 3  # peers asked per input whose summary only *may* hold it (a Bloom hit)


class PeerView:
    def __init__(
        self,
        peers: PeerTable,
        ping: Callable[[str], Awaitable[float]],
        bandwidth: Mapping[str, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peers = peers
        self._ping = ping
        self._bandwidth = bandwidth
        self._clock = clock
        self._rtt: dict[str, tuple[float, float]] = {}  # peer -> (seconds, measured at)
        self._asked: dict[str, float] = {}  # peer -> when its RTT was last asked for (answered or not)
        self._pinging: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, tuple[int, Holdings]] = {}  # peer -> (announcement seq, its summary)
        self._candidates: dict[str, tuple[tuple[int, tuple[float, float] | None, float | None], Candidate]] = {}

    def candidates(self, own: Candidate) -> dict[str, Candidate]:
        """This node and every alive peer, as placement sees them now (no network)."""
        view = {own.peer_id: own}
        farthest = max((seconds for seconds, _ in self._rtt.values()), default=None)
        for record in self.peers.alive():
            peer = record.peer_id
            if peer == own.peer_id:
                continue
            measured = self._rtt.get(peer)
            if measured is None and farthest is not None:
                measured = (farthest, -1.0)  # not measured yet: as far as the farthest known
            key = (int(record.announcement.get("seq", 0)), measured, self._bandwidth.get(peer))
            cached = self._candidates.get(peer)
            if cached is None or cached[0] != key:  # parsed once per announcement and measurement
                candidate = from_announcement(peer, record.announcement)
                if measured is not None:
                    candidate = replace(candidate, rtt=measured[0])
                if key[2] is not None:
                    candidate = replace(candidate, bandwidth=key[2])
                cached = (key, candidate)
                self._candidates[peer] = cached
            view[peer] = cached[1]
            self._refresh_rtt(peer)
        return view

    def rtt(self, peer: str) -> float | None:
        measured = self._rtt.get(peer)
        return None if measured is None else measured[0]

    def holdings(self, peer: str) -> Holdings:
        record = self.peers.get(peer)
        if record is None:
            return holdings.NOTHING
        seq = int(record.announcement.get("seq", 0))
        cached = self._held.get(peer)
        if cached is None or cached[0] != seq:
            cached = (seq, holdings.from_announcement(record.announcement))
            self._held[peer] = cached
        return cached[1]

    def placed(self, cid: CID, peers: Iterable[str]) -> tuple[dict[str, int], list[str]]:
        """(peers whose summary lists ``cid``, with the stated size; peers whose filter may hold it)."""
        listed: dict[str, int] = {}
        maybe: list[str] = []
        for peer in peers:
            summary = self.holdings(peer)
            size = summary.size_of(cid)
            if size is not None:
                listed[peer] = size
            elif summary.may_hold(cid):
                maybe.append(peer)
        return listed, maybe

    def _refresh_rtt(self, peer: str) -> None:
        """Measure the RTT to ``peer`` in the background when it is unknown or old."""
        asked = self._asked.get(peer)
        now = self._clock()
        if peer in self._pinging or (asked is not None and now - asked < RTT_MAX_AGE):
            return
        self._asked[peer] = now
        task = asyncio.get_running_loop().create_task(self._measure(peer))
        self._pinging[peer] = task
        task.add_done_callback(lambda _: self._pinging.pop(peer, None))

    async def _measure(self, peer: str) -> None:
        samples = []
        for _ in range(PING_SAMPLES):
            try:
                samples.append(await asyncio.wait_for(self._ping(peer), PING_TIMEOUT))
            except (NetworkError, TimeoutError) as exc:
                log.debug("ping %s: %s", peer, exc)
        if not samples:
            self._rtt.pop(peer, None)  # unknown: placed as the farthest known until it answers (asked again later)
            return
        self._rtt[peer] = (min(samples), self._clock())
