"""The delay router's forwarding rules, on pipes (no namespaces needed): held for the pair's delay,
dropped at its loss rate or when cut off, and only IPv4 between known sites."""

from __future__ import annotations

import os

from node.harness.router import Port, Router


def _packet(target_site: int, payload: bytes = b"x" * 20) -> bytes:
    header = bytearray(20)
    header[0] = 0x45
    header[16:20] = bytes([10, 77, target_site + 1, 1])
    return bytes(header) + payload


def _router(loss: float = 0.0) -> tuple[Router, list[int]]:
    pipes = [os.pipe() for _ in range(3)]
    for read_end, _ in pipes:
        os.set_blocking(read_end, False)
    ports = [Port(name, write_end) for name, (_, write_end) in zip(("eu", "us", "ap"), pipes, strict=True)]
    delay = [[0.0, 0.04, 0.08], [0.04, 0.0, 0.06], [0.08, 0.06, 0.0]]
    return Router(ports, delay, [[loss] * 3 for _ in range(3)], seed=1), [r for r, _ in pipes]


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def test_a_packet_waits_its_pair_delay_then_reaches_its_site() -> None:
    router, inboxes = _router()
    router.take(0, _packet(1), now=100.0)  # eu -> us: 40 ms one way
    router.take(0, _packet(2), now=100.0)  # eu -> ap: 80 ms
    router.release(100.039)
    assert _read(inboxes[1]) == b"" and _read(inboxes[2]) == b""
    router.release(100.040)
    assert _read(inboxes[1]) == _packet(1) and _read(inboxes[2]) == b""
    router.release(100.080)
    assert _read(inboxes[2]) == _packet(2) and router.forwarded == 2


def test_loss_cut_and_foreign_packets_are_dropped() -> None:
    router, inboxes = _router(loss=0.25)
    for _ in range(4000):
        router.take(0, _packet(1), now=0.0)
    assert 850 <= router.dropped <= 1150  # 25% of 4000, within 5 sigma
    router, inboxes = _router()
    router.command('{"cut": ["ap"]}')
    router.take(0, _packet(2), now=0.0)  # to the cut-off site
    router.take(2, _packet(0), now=0.0)  # from it
    router.take(0, _packet(0), now=0.0)  # to itself
    router.take(0, b"\x60" + _packet(1)[1:], now=0.0)  # IPv6
    router.take(0, b"\x45\x00", now=0.0)  # truncated
    router.take(0, _packet(7), now=0.0)  # no such site
    router.release(1.0)
    assert router.cut_dropped == 2 and router.forwarded == 0 and all(_read(fd) == b"" for fd in inboxes)


def test_control_commands_are_checked() -> None:
    router, _ = _router()
    assert router.command("not json") == {"error": "not JSON"}
    assert router.command('{"cut": "ap"}')["error"].startswith("cut takes")
    assert router.command('{"cut": ["mars"]}')["error"].startswith("no site")
    assert router.command('{"cut": ["ap"]}') == {"cut": ["ap"]} and router.ports[2].cut
    assert router.command('{"cut": []}') == {"cut": []} and not router.ports[2].cut
    assert router.command("[]") == {"error": "not an object"}


def test_a_shaped_downlink_serializes_arrivals_and_drops_past_its_queue() -> None:
    router, inboxes = _router()
    router.downlink = [0.0, 125_000.0, 0.0]  # 1 Mbit/s into us
    packet = _packet(1, b"x" * 1230)  # 1250 bytes: 10 ms at 1 Mbit/s
    router.take(2, packet, now=100.0)  # from ap, 60 ms away: arrives last, goes last
    router.take(0, packet, now=100.0)  # from eu, 40 ms away
    router.take(0, packet, now=100.0)  # right behind it: waits for it
    delivered = []
    for step in range(101):
        router.release(100.0 + step / 1000 + 1e-9)
        if _read(inboxes[1]):
            delivered.append(step)
    assert delivered == [50, 60, 70]  # each arrival, then 10 ms of downlink each, in arrival order
    router, inboxes = _router()
    router.downlink = [0.0, 125_000.0, 0.0]
    for _ in range(30):  # 0.25 s of downlink queue holds 25 behind the first; the rest are dropped
        router.take(0, packet, now=100.0)
    for step in range(1001):
        router.release(100.0 + step / 1000 + 1e-9)
    assert router.forwarded in (25, 26) and router.shaped_dropped == 30 - router.forwarded  # 26th: at the bound
    assert router.command('{"stats": true}')["shaped_dropped"] == router.shaped_dropped


def test_jitter_varies_the_delay_but_never_reorders_a_link() -> None:
    router, _ = _router()
    router.jitter = [[0.0, 0.01, 0.0], [0.01, 0.0, 0.0], [0.0, 0.0, 0.0]]  # eu<->us: 40 +- 10 ms
    for index in range(500):
        router.take(0, _packet(1, index.to_bytes(4, "big")), now=100.0 + index * 0.001)
    order = [int.from_bytes(packet[20:24], "big") for _, _, _, packet, _ in sorted(router.queue)]
    delays = [due - (100.0 + int.from_bytes(p[20:24], "big") * 0.001) for due, _, _, p, _ in router.queue]
    assert order == list(range(500))  # in the order sent
    assert min(delays) >= 0.03 - 1e-9 and max(delays) <= 0.05 + 0.001 and max(delays) - min(delays) > 0.015
