"""A home-router NAT for one site, applied by the WAN router to the site's IPv4 packets.

This host has no iptables or nftables, so the translation is done in userspace, on the packets
the router already handles. It behaves like a typical home NAT, the case libp2p's hole punching
targets:

- endpoint-independent mapping: one inside ``ip:port`` gets one public port, whatever it sends
  to (the inside port is kept when free, as most home NATs do, so a peer can predict it);
- port-restricted filtering: an inbound packet passes only from a remote ``ip:port`` the inside
  host has sent to through that mapping; everything unsolicited is dropped;
- idle mappings (and each remote endpoint on them) expire after ``idle_s`` without traffic.

``symmetric=True`` makes it a carrier-grade/symmetric NAT instead: a new public port for each
remote endpoint, never the inside one. A peer cannot predict that port, so hole punching fails
through it, as it does on such networks.

Only TCP and UDP are translated (first fragments only; the harness MTU keeps datagrams whole);
other protocols leaving the site are dropped. Checksums are adjusted incrementally (RFC 1624).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

TCP, UDP = 6, 17
EPHEMERAL = range(49152, 65536)  # where a mapping goes when its inside port is taken
_SWEEP_EVERY_S = 1.0

Endpoint = tuple[bytes, int]  # IPv4 address (4 bytes), port


@dataclass
class Mapping:
    """One inside endpoint's public port and the remote endpoints it may hear from."""

    proto: int
    inside: Endpoint
    public_port: int
    last: float
    remotes: dict[Endpoint, float] = field(default_factory=dict)  # remote endpoint -> last packet


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def adjust(checksum: int, old: bytes, new: bytes) -> int:
    """The Internet checksum after ``old`` (even length) was replaced by ``new``: RFC 1624 eq. 3."""
    total = ~checksum & 0xFFFF
    for index in range(0, len(old), 2):
        total += (~int.from_bytes(old[index : index + 2], "big") & 0xFFFF) + int.from_bytes(
            new[index : index + 2], "big"
        )
    return ~_fold(total) & 0xFFFF


def checksum(data: bytes) -> int:
    """The Internet checksum of ``data`` (padded to even length), for tests and new headers."""
    if len(data) % 2:
        data += b"\x00"
    return ~_fold(sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))) & 0xFFFF


class Nat:
    """The translation table of one site: ``outbound`` on packets leaving it, ``inbound`` on
    packets arriving for its public address. Both return the rewritten packet, or None to drop."""

    def __init__(self, inside: str, public: str, idle_s: float, symmetric: bool = False) -> None:
        self.inside_ip = ipaddress.IPv4Address(inside).packed
        self.public_ip = ipaddress.IPv4Address(public).packed
        self.idle_s = idle_s
        self.symmetric = symmetric
        self._next_port = EPHEMERAL.start + 1000  # a symmetric NAT's ports: sequential, unrelated to inside
        self.by_inside: dict[tuple[int, Endpoint, Endpoint | None], Mapping] = {}
        self.by_public: dict[tuple[int, int], Mapping] = {}
        self.dropped = 0  # unsolicited or expired inbound, untranslatable outbound
        self.expired = 0
        self._swept = 0.0

    def outbound(self, packet: bytes, now: float) -> bytes | None:
        parsed = _ports(packet)
        if parsed is None or packet[12:16] != self.inside_ip:
            self.dropped += 1
            return None
        proto, header, src_port, dst_port = parsed
        self._sweep(now)
        remote = (packet[16:20], dst_port)
        key = (proto, (self.inside_ip, src_port), remote if self.symmetric else None)
        mapping = self.by_inside.get(key)
        if mapping is None:
            mapping = Mapping(proto, key[1], self._free_port(proto, None if self.symmetric else src_port), now)
            self.by_inside[key] = mapping
            self.by_public[(proto, mapping.public_port)] = mapping
        mapping.last = now
        mapping.remotes[remote] = now
        return _rewrite(packet, header, proto, 12, self.public_ip, header, mapping.public_port)

    def inbound(self, packet: bytes, now: float) -> bytes | None:
        parsed = _ports(packet)
        if parsed is None or packet[16:20] != self.public_ip:
            self.dropped += 1
            return None
        proto, header, src_port, dst_port = parsed
        mapping = self.by_public.get((proto, dst_port))
        remote = (packet[12:16], src_port)
        seen = mapping.remotes.get(remote) if mapping is not None else None
        if mapping is None or seen is None or now - seen > self.idle_s:
            self.dropped += 1  # unsolicited: nothing inside asked to hear from this endpoint
            return None
        mapping.last = mapping.remotes[remote] = now
        return _rewrite(packet, header, proto, 16, self.inside_ip, header + 2, mapping.inside[1])

    def _free_port(self, proto: int, wanted: int | None) -> int:
        if wanted is not None and (proto, wanted) not in self.by_public:
            return wanted
        for _ in EPHEMERAL:
            port = self._next_port
            self._next_port = port + 1 if port + 1 < EPHEMERAL.stop else EPHEMERAL.start
            if (proto, port) not in self.by_public:
                return port
        raise OverflowError("the NAT has no free public port")  # 16k live mappings: not in a test

    def _sweep(self, now: float) -> None:
        if now - self._swept < _SWEEP_EVERY_S:
            return
        self._swept = now
        for key, mapping in list(self.by_inside.items()):
            mapping.remotes = {r: t for r, t in mapping.remotes.items() if now - t <= self.idle_s}
            if now - mapping.last > self.idle_s:
                del self.by_inside[key], self.by_public[(mapping.proto, mapping.public_port)]
                self.expired += 1

    def table(self) -> list[dict[str, object]]:
        """The live mappings, for the router's stats and for tests."""
        return [
            {
                "proto": "tcp" if m.proto == TCP else "udp",
                "inside": f"{ipaddress.IPv4Address(m.inside[0])}:{m.inside[1]}",
                "public": f"{ipaddress.IPv4Address(self.public_ip)}:{m.public_port}",
                "remotes": sorted(f"{ipaddress.IPv4Address(ip)}:{port}" for ip, port in m.remotes),
            }
            for m in self.by_inside.values()
        ]


def _ports(packet: bytes) -> tuple[int, int, int, int] | None:
    """(protocol, transport header offset, source port, destination port) of a whole TCP or UDP
    packet; None for anything else (other protocols, later fragments, truncated headers)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    header = (packet[0] & 0x0F) * 4
    proto = packet[9]
    fragment = int.from_bytes(packet[6:8], "big")
    if proto not in (TCP, UDP) or fragment & 0x3FFF or header < 20:
        return None  # fragment offset or more-fragments set: no ports to translate
    if len(packet) < header + (20 if proto == TCP else 8):
        return None
    return (
        proto,
        header,
        int.from_bytes(packet[header : header + 2], "big"),
        int.from_bytes(packet[header + 2 : header + 4], "big"),
    )


def _rewrite(packet: bytes, header: int, proto: int, ip_at: int, ip: bytes, port_at: int, port: int) -> bytes:
    """``packet`` with the address at ``ip_at`` and the port at ``port_at`` replaced, and the IPv4
    and TCP/UDP checksums (whose pseudo-header covers the addresses) adjusted to match."""
    out = bytearray(packet)
    old_ip, new_ip = bytes(out[ip_at : ip_at + 4]), ip
    old_port, new_port = bytes(out[port_at : port_at + 2]), port.to_bytes(2, "big")
    out[ip_at : ip_at + 4] = new_ip
    out[port_at : port_at + 2] = new_port
    out[10:12] = adjust(int.from_bytes(out[10:12], "big"), old_ip, new_ip).to_bytes(2, "big")
    at = header + (16 if proto == TCP else 6)
    old_sum = int.from_bytes(out[at : at + 2], "big")
    if proto == UDP and old_sum == 0:
        return bytes(out)  # a UDP datagram sent without a checksum stays without one
    new_sum = adjust(old_sum, old_ip + old_port, new_ip + new_port)
    if proto == UDP and new_sum == 0:
        new_sum = 0xFFFF  # zero means "no checksum" in UDP
    out[at : at + 2] = new_sum.to_bytes(2, "big")
    return bytes(out)
