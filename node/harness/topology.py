"""Typed description of an emulated WAN: sites (one network namespace each) and what joins them.

A site sits in a metro (eu, us, ap, ...) and has one uplink with a rate and a loss. The round-trip
time between two sites is the metro-to-metro RTT plus each site's access RTT. Latency and loss are
applied by the userspace router (the kernel here has no netem); the rate by tbf on the uplink.
A site with ``nat=True`` sits behind a home-router NAT (``nat.py``): its hosts have a private
address no other site can reach, and their traffic leaves from the site's public address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from node.errors import NodeError

MAX_SITES = 200
SUBNET = ipaddress.IPv4Network("10.77.0.0/16")  # site i is 10.77.<i+1>.1, reachable only through the router
INSIDE_PREFIX = "192.168."  # a NAT'd site i's hosts are 192.168.<i+1>.1, routed nowhere


class TopologyError(NodeError):
    """A topology that cannot be built (unknown metro, bad rate or loss, too many sites)."""


@dataclass(frozen=True)
class Site:
    """One network namespace: its nodes share one address and one uplink."""

    name: str
    metro: str
    uplink_mbit: float = 1000.0
    loss: float = 0.0  # fraction of packets dropped on this uplink, each way
    access_rtt_ms: float = 0.0  # added to every round trip that leaves the site
    downlink_mbit: float = 0.0  # rate into the site (shaped by the router); 0: unshaped
    jitter_ms: float = 0.0  # each packet leaving or entering the site is delayed up to this much more or less
    nat: bool = False  # behind a NAT: reachable only by answering what the site sent first
    nat_idle_s: float = 120.0  # a NAT mapping unused this long is forgotten
    nat_symmetric: bool = False  # a new public port per destination: no hole punching through it

    def __post_init__(self) -> None:
        if not self.name.isascii() or not self.name.replace("-", "").isalnum() or len(self.name) > 12:
            raise TopologyError(f"site name {self.name!r}: up to 12 letters, digits and dashes")
        if not 0.1 <= self.uplink_mbit <= 100_000:
            raise TopologyError(f"site {self.name}: uplink {self.uplink_mbit} Mbit/s is outside 0.1..100000")
        if not 0.0 <= self.loss < 0.5:
            raise TopologyError(f"site {self.name}: loss {self.loss} is outside 0..0.5")
        if not 0.0 <= self.access_rtt_ms <= 10_000:
            raise TopologyError(f"site {self.name}: access RTT {self.access_rtt_ms} ms is outside 0..10000")
        if self.downlink_mbit and not 0.1 <= self.downlink_mbit <= 100_000:
            raise TopologyError(f"site {self.name}: downlink {self.downlink_mbit} Mbit/s is outside 0.1..100000")
        if not 0.0 <= self.jitter_ms <= 1000:
            raise TopologyError(f"site {self.name}: jitter {self.jitter_ms} ms is outside 0..1000")
        if not 0.1 <= self.nat_idle_s <= 86_400:
            raise TopologyError(f"site {self.name}: NAT idle timeout {self.nat_idle_s} s is outside 0.1..86400")


@dataclass(frozen=True)
class Topology:
    """Sites plus the metro-to-metro round-trip times (symmetric; same metro: 0 unless given)."""

    sites: tuple[Site, ...]
    metro_rtt_ms: dict[tuple[str, str], float] = field(default_factory=dict)
    mtu: int = 9000  # fewer, larger packets: the router forwards each one in Python

    def __post_init__(self) -> None:
        names = [site.name for site in self.sites]
        if not self.sites or len(self.sites) > MAX_SITES or len(set(names)) != len(names):
            raise TopologyError(f"a topology needs 1..{MAX_SITES} sites with distinct names, got {names}")
        metros = {site.metro for site in self.sites}
        for (a, b), rtt in self.metro_rtt_ms.items():
            if a not in metros or b not in metros:
                raise TopologyError(f"metro RTT {a}<->{b}: no site is in {a if a not in metros else b}")
            if not 0.0 <= rtt <= 10_000:
                raise TopologyError(f"metro RTT {a}<->{b}: {rtt} ms is outside 0..10000")
        for a in metros:
            for b in metros:
                if a < b and (a, b) not in self.metro_rtt_ms and (b, a) not in self.metro_rtt_ms:
                    raise TopologyError(f"no RTT given between metros {a} and {b}")
        if not 1280 <= self.mtu <= 65000:
            raise TopologyError(f"MTU {self.mtu} is outside 1280..65000")

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise TopologyError(f"no site {name!r} (sites: {', '.join(s.name for s in self.sites)})")

    def index(self, name: str) -> int:
        return self.sites.index(self.site(name))

    def address(self, name: str) -> str:
        """The site's one address (its nodes listen there, on distinct ports); behind NAT that is
        the private inside address, which no other site can reach."""
        if self.site(name).nat:
            return f"{INSIDE_PREFIX}{self.index(name) + 1}.1"
        return self.public_address(name)

    def public_address(self, name: str) -> str:
        """The address other sites see the site's traffic come from (the NAT's, behind one)."""
        return f"10.77.{self.index(name) + 1}.1"

    def rtt_ms(self, a: str, b: str) -> float:
        """The emulated round trip between two sites (0 within a site: that is its own loopback)."""
        if a == b:
            return 0.0
        first, second = self.site(a), self.site(b)
        pair = (first.metro, second.metro)
        metro = self.metro_rtt_ms.get(pair, self.metro_rtt_ms.get((pair[1], pair[0]), 0.0))
        return metro + first.access_rtt_ms + second.access_rtt_ms

    def jitter_ms(self, a: str, b: str) -> float:
        """How much a packet's one-way delay from ``a`` to ``b`` varies either way: both ends' jitter."""
        return 0.0 if a == b else self.site(a).jitter_ms + self.site(b).jitter_ms

    def loss(self, a: str, b: str) -> float:
        """Probability a packet from ``a`` to ``b`` is lost: it crosses both uplinks."""
        if a == b:
            return 0.0
        return 1.0 - (1.0 - self.site(a).loss) * (1.0 - self.site(b).loss)


def standard() -> Topology:
    """The issue's planet: three core regions on 1 Gbit/s and one edge behind a lossy 20 Mbit/s uplink.

    The 1 Gbit/s is what tbf is asked for; eu->us (80 ms) one TCP flow gets ~0.26 Gbit/s
    (window-bound), 8-16 long flows ~0.85-0.9 (measured: README, WAN harness)."""
    return Topology(
        sites=(
            Site("eu", "eu"),
            Site("us", "us"),
            Site("ap", "ap"),
            Site("edge", "eu", uplink_mbit=20.0, loss=0.005, access_rtt_ms=10.0),
        ),
        metro_rtt_ms={("eu", "us"): 80.0, ("eu", "ap"): 160.0, ("us", "ap"): 120.0},
    )


def natted() -> Topology:
    """Sites behind NAT: a relay (eu), a public us site, an edge and a requester each behind a
    home NAT (hole punching works between them), and one behind a symmetric NAT (it does not)."""
    return Topology(
        sites=(
            Site("eu", "eu"),
            Site("us", "us"),
            Site("home", "eu", uplink_mbit=20.0, access_rtt_ms=10.0, nat=True),
            Site("home2", "us", access_rtt_ms=10.0, nat=True),
            Site("cgn", "us", access_rtt_ms=10.0, nat=True, nat_symmetric=True),
        ),
        metro_rtt_ms={("eu", "us"): 80.0},
    )
