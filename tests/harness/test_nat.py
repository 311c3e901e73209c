"""The router's NAT on packets (no namespaces needed): addresses and ports rewritten with checksums
that still verify, one mapping per inside endpoint, port-restricted filtering, idle expiry."""

from __future__ import annotations

import ipaddress
import os

from node.harness.nat import TCP, UDP, Nat, checksum
from node.harness.router import Port, Router

INSIDE, PUBLIC = "192.168.2.1", "10.77.2.1"
REMOTE = "10.77.1.1"


def _ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _packet(
    proto: int, src: str, sport: int, dst: str, dport: int, payload: bytes = b"hello", csum: bool = True
) -> bytes:
    """A whole IPv4 TCP or UDP packet with correct checksums (or a UDP one without any)."""
    if proto == TCP:
        transport = bytearray(sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes(8) + b"\x50\x02" + bytes(6))
    else:
        transport = bytearray(
            sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big") + bytes(2)
        )
    segment = bytes(transport) + payload
    if csum:
        pseudo = _ip(src) + _ip(dst) + bytes([0, proto]) + len(segment).to_bytes(2, "big")
        at = 16 if proto == TCP else 6
        transport[at : at + 2] = checksum(pseudo + segment).to_bytes(2, "big")
        segment = bytes(transport) + payload
    header = bytearray(
        b"\x45\x00" + (20 + len(segment)).to_bytes(2, "big") + b"\x00\x01\x40\x00\x40" + bytes([proto]) + bytes(2)
    )
    header += _ip(src) + _ip(dst)
    header[10:12] = checksum(bytes(header)).to_bytes(2, "big")
    return bytes(header) + segment


def _valid(packet: bytes) -> bool:
    """Both checksums verify, as the receiving kernel checks them."""
    if checksum(packet[:20]) != 0:
        return False
    proto, segment = packet[9], packet[20:]
    if proto == UDP and segment[6:8] == b"\x00\x00":
        return True
    pseudo = packet[12:20] + bytes([0, proto]) + len(segment).to_bytes(2, "big")
    return checksum(pseudo + segment) == 0


def _endpoints(packet: bytes) -> tuple[str, int, str, int]:
    return (
        str(ipaddress.IPv4Address(packet[12:16])),
        int.from_bytes(packet[20:22], "big"),
        str(ipaddress.IPv4Address(packet[16:20])),
        int.from_bytes(packet[22:24], "big"),
    )


def test_outbound_is_rewritten_to_the_public_address_and_the_answer_comes_back_in() -> None:
    nat = Nat(INSIDE, PUBLIC, idle_s=30)
    for proto in (TCP, UDP):
        out = nat.outbound(_packet(proto, INSIDE, 4001, REMOTE, 80), now=0.0)
        assert out is not None and _valid(out) and _endpoints(out) == (PUBLIC, 4001, REMOTE, 80)
        back = nat.inbound(_packet(proto, REMOTE, 80, PUBLIC, 4001, b"world!"), now=0.1)
        assert back is not None and _valid(back) and _endpoints(back) == (REMOTE, 80, INSIDE, 4001)
        assert back.endswith(b"world!")
    unsummed = nat.outbound(_packet(UDP, INSIDE, 4002, REMOTE, 53, csum=False), now=0.2)
    assert unsummed is not None and unsummed[26:28] == b"\x00\x00" and checksum(unsummed[:20]) == 0


def test_one_inside_endpoint_keeps_one_public_port_whatever_it_sends_to() -> None:
    nat = Nat(INSIDE, PUBLIC, idle_s=30)
    first = nat.outbound(_packet(UDP, INSIDE, 5000, REMOTE, 1), now=0.0)
    second = nat.outbound(_packet(UDP, INSIDE, 5000, "10.77.3.1", 2), now=0.1)
    assert first is not None and second is not None
    assert _endpoints(first)[:2] == _endpoints(second)[:2] == (PUBLIC, 5000)
    assert len(nat.table()) == 1 and nat.table()[0]["remotes"] == ["10.77.1.1:1", "10.77.3.1:2"]


def test_unsolicited_and_other_port_packets_are_dropped() -> None:
    nat = Nat(INSIDE, PUBLIC, idle_s=30)
    assert nat.inbound(_packet(TCP, REMOTE, 80, PUBLIC, 4001), now=0.0) is None  # nothing was sent
    assert nat.outbound(_packet(TCP, INSIDE, 4001, REMOTE, 80), now=0.0) is not None
    assert nat.inbound(_packet(TCP, REMOTE, 81, PUBLIC, 4001), now=0.1) is None  # same host, other port
    assert nat.inbound(_packet(TCP, "10.77.3.1", 80, PUBLIC, 4001), now=0.1) is None  # other host
    assert nat.inbound(_packet(UDP, REMOTE, 80, PUBLIC, 4001), now=0.1) is None  # other protocol
    assert nat.inbound(_packet(TCP, REMOTE, 80, PUBLIC, 4002), now=0.1) is None  # other port of ours
    assert nat.inbound(_packet(TCP, REMOTE, 80, PUBLIC, 4001), now=0.1) is not None
    icmp = bytearray(_packet(UDP, INSIDE, 1, REMOTE, 1))
    icmp[9] = 1
    assert nat.outbound(bytes(icmp), now=0.2) is None  # only TCP and UDP leave a NAT'd site
    assert nat.outbound(_packet(TCP, "192.168.2.9", 1, REMOTE, 1), now=0.2) is None  # spoofed source
    assert nat.dropped == 7


def test_idle_mappings_expire() -> None:
    nat = Nat(INSIDE, PUBLIC, idle_s=5)
    assert nat.outbound(_packet(UDP, INSIDE, 6000, REMOTE, 9), now=0.0) is not None
    assert nat.inbound(_packet(UDP, REMOTE, 9, PUBLIC, 6000), now=4.0) is not None  # refreshes it
    assert nat.inbound(_packet(UDP, REMOTE, 9, PUBLIC, 6000), now=8.5) is not None
    assert nat.inbound(_packet(UDP, REMOTE, 9, PUBLIC, 6000), now=14.0) is None  # 5.5 s quiet
    nat.outbound(_packet(UDP, INSIDE, 7000, REMOTE, 9), now=14.0)  # any outbound sweeps the table
    assert nat.expired == 1 and [m["inside"] for m in nat.table()] == [f"{INSIDE}:7000"]


def test_the_router_translates_leaving_and_filters_on_arrival() -> None:
    pipes = [os.pipe() for _ in range(2)]
    for read_end, _ in pipes:
        os.set_blocking(read_end, False)
    ports = [Port(name, write_end) for name, (_, write_end) in zip(("eu", "home"), pipes, strict=True)]
    delay = [[0.0, 0.05], [0.05, 0.0]]
    router = Router(ports, delay, [[0.0] * 2] * 2, seed=1, nats={1: Nat(INSIDE, PUBLIC, idle_s=30)})
    # the remote's packet leaves before the inside host's, but arrives after it sent: it passes,
    # as a hole punch needs (the filter runs on arrival)
    router.take(0, _packet(TCP, REMOTE, 80, PUBLIC, 4001), now=0.0)
    router.take(1, _packet(TCP, INSIDE, 4001, REMOTE, 80), now=0.01)
    router.take(0, _packet(TCP, REMOTE, 99, PUBLIC, 4001), now=0.01)  # unsolicited: dropped
    router.release(1.0)
    at_home, at_eu = os.read(pipes[1][0], 1 << 16), os.read(pipes[0][0], 1 << 16)
    assert _endpoints(at_home) == (REMOTE, 80, INSIDE, 4001) and _valid(at_home)
    assert _endpoints(at_eu) == (PUBLIC, 4001, REMOTE, 80) and _valid(at_eu)
    assert router.command('{"stats": true}')["nat_dropped"] == 1 and router.forwarded == 2
    assert router.command('{"nat": "home"}')["mappings"][0]["public"] == f"{PUBLIC}:4001"
    assert router.command('{"nat": "eu"}')["error"].startswith("no NAT'd site")


def test_a_symmetric_nat_maps_each_destination_to_a_new_unpredictable_port() -> None:
    nat = Nat(INSIDE, PUBLIC, idle_s=30, symmetric=True)
    first = nat.outbound(_packet(UDP, INSIDE, 5000, REMOTE, 1), now=0.0)
    again = nat.outbound(_packet(UDP, INSIDE, 5000, REMOTE, 1), now=0.1)
    other = nat.outbound(_packet(UDP, INSIDE, 5000, "10.77.3.1", 2), now=0.2)
    assert first is not None and again is not None and other is not None and _valid(other)
    ports = {_endpoints(p)[1] for p in (first, other)}
    assert _endpoints(first)[1] == _endpoints(again)[1] and len(ports) == 2 and 5000 not in ports
    # the second destination cannot answer on the first one's port
    assert nat.inbound(_packet(UDP, "10.77.3.1", 2, PUBLIC, _endpoints(first)[1]), now=0.3) is None
    assert nat.inbound(_packet(UDP, "10.77.3.1", 2, PUBLIC, _endpoints(other)[1]), now=0.3) is not None
