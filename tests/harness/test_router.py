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
