"""Measuring an emulated WAN from the host with sockets made inside its namespaces."""

from __future__ import annotations

import functools
import socket
import threading
import time

from node.harness import netns
from node.harness.planet import Planet

_PORTS = iter(range(20000, 30000))


@functools.cache
def skip_reason() -> str | None:
    """Why no planet can be built here (probed once per test process); None when one can."""
    return netns.unavailable()


def rtt_ms(planet: Planet, client: str, server: str, pings: int = 5) -> float:
    """The link's round trip: the fastest of ``pings`` TCP ping-pongs (1 byte each way, Nagle off)
    from ``client`` to ``server``. The emulated delay is a floor that scheduling on a busy host
    only adds to, so the minimum measures the link and a median would measure the host."""
    port = next(_PORTS)
    listener = netns.socket_in(planet.netns_of(server))
    listener.bind((planet.topology.address(server), port))
    listener.listen()

    def echo() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while conn.recv(1):
                conn.sendall(b"y")

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    with netns.socket_in(planet.netns_of(client)) as sock:
        sock.settimeout(10)
        sock.connect((planet.topology.address(server), port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples = []
        for _ in range(pings):
            started = time.perf_counter()
            sock.sendall(b"x")
            assert sock.recv(1) == b"y"
            samples.append((time.perf_counter() - started) * 1000)
    thread.join(10)
    listener.close()
    return min(samples)


def rate_mbit(planet: Planet, sender: str, receiver: str, size: int) -> float:
    """Goodput of one TCP transfer, timed at the receiver from its first to its last byte."""
    port = next(_PORTS)
    listener = netns.socket_in(planet.netns_of(receiver))
    listener.bind((planet.topology.address(receiver), port))
    listener.listen()
    marks: list[float] = []
    received = [0]

    def sink() -> None:
        conn, _ = listener.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                if not marks:
                    marks.append(time.perf_counter())
                    received[0] -= len(chunk)  # the first chunk arrived at the start mark
                received[0] += len(chunk)
            marks.append(time.perf_counter())

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    with netns.socket_in(planet.netns_of(sender)) as sock:
        sock.settimeout(60)
        sock.connect((planet.topology.address(receiver), port))
        sock.sendall(b"\x00" * size)
    thread.join(60)
    listener.close()
    return received[0] * 8 / (marks[-1] - marks[0]) / 1e6


def parallel_rate_mbit(planet: Planet, sender: str, receiver: str, each: int, flows: int) -> float:
    """Goodput of ``flows`` TCP transfers of ``each`` bytes at once, from the first byte received
    to the last: what a link gives when one flow's window cannot fill it."""
    port = next(_PORTS)
    listener = netns.socket_in(planet.netns_of(receiver))
    listener.bind((planet.topology.address(receiver), port))
    listener.listen(flows)
    lock = threading.Lock()
    received = [0]
    marks: list[float] = []

    def sink(conn: socket.socket) -> None:
        with conn:
            while chunk := conn.recv(1 << 20):
                with lock:
                    if not marks:
                        marks.append(time.perf_counter())
                        received[0] -= len(chunk)  # the first chunk arrived at the start mark
                    received[0] += len(chunk)
        with lock:
            marks.append(time.perf_counter())

    def accept_all() -> None:
        sinks = [threading.Thread(target=sink, args=(listener.accept()[0],), daemon=True) for _ in range(flows)]
        for thread in sinks:
            thread.start()
        for thread in sinks:
            thread.join(120)

    def send() -> None:
        with netns.socket_in(planet.netns_of(sender)) as sock:
            sock.settimeout(120)
            sock.connect((planet.topology.address(receiver), port))
            sock.sendall(b"\x00" * each)

    acceptor = threading.Thread(target=accept_all, daemon=True)
    acceptor.start()
    senders = [threading.Thread(target=send, daemon=True) for _ in range(flows)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(120)
    acceptor.join(120)
    listener.close()
    return received[0] * 8 / (max(marks) - marks[0]) / 1e6


def udp_delivered(planet: Planet, sender: str, receiver: str, count: int) -> int:
    """How many of ``count`` small datagrams arrive (paced, so no queue on the way overflows)."""
    port = next(_PORTS)
    inbox = netns.socket_in(planet.netns_of(receiver), socket.SOCK_DGRAM)
    inbox.bind((planet.topology.address(receiver), port))
    inbox.settimeout(0.5)
    seen: set[bytes] = set()

    def collect() -> None:
        try:
            while len(seen) < count:
                seen.add(inbox.recv(64))
        except TimeoutError:
            pass  # quiet for 0.5 s after the last one: the rest were lost

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    with netns.socket_in(planet.netns_of(sender), socket.SOCK_DGRAM) as out:
        for index in range(count):
            out.sendto(index.to_bytes(4, "big"), (planet.topology.address(receiver), port))
            if index % 20 == 19:
                time.sleep(0.001)  # pace, so only the router's loss applies, not a full queue
    thread.join(30)
    inbox.close()
    return len(seen)


def connects(planet: Planet, client: str, server: str, timeout: float = 0.6) -> bool:
    """Whether a TCP connection from ``client`` to ``server`` opens within ``timeout``."""
    port = next(_PORTS)
    listener = netns.socket_in(planet.netns_of(server))
    listener.bind((planet.topology.address(server), port))
    listener.listen()
    try:
        with netns.socket_in(planet.netns_of(client)) as sock:
            sock.settimeout(timeout)
            sock.connect((planet.topology.address(server), port))
            return True
    except OSError:
        return False
    finally:
        listener.close()
