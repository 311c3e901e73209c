"""A site behind the router's NAT, with real sockets in real namespaces: it can dial out, nothing
can dial in, its mappings are reused, and two NAT'd sites can open TCP to each other at once
through their mappings: hole punching works here, as DCUtR needs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from node.harness import netns
from node.harness.planet import Planet
from node.harness.topology import Site, Topology
from tests.harness.wan import connects

Build = Callable[..., Planet]
_PORTS = iter(range(30000, 31000))


def _homes() -> Topology:
    sites = (Site("pub", "eu"), Site("home", "eu", nat=True), Site("home2", "us", nat=True), Site("pub2", "us"))
    return Topology(sites, {("eu", "us"): 40.0}, 9000)


def _peer_seen_by(wan: Planet, client: str, server: str, bind_port: int = 0) -> tuple[str, int]:
    """Connect from ``client`` (from ``bind_port``) to ``server``; the address the server saw."""
    port = next(_PORTS)
    listener = netns.socket_in(wan.netns_of(server))
    listener.bind((wan.topology.address(server), port))
    listener.listen()
    try:
        with netns.socket_in(wan.netns_of(client)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((wan.topology.address(client), bind_port))
            sock.settimeout(5)
            sock.connect((wan.topology.public_address(server), port))
            conn, seen = listener.accept()
            conn.close()
            return seen[0], seen[1]
    finally:
        listener.close()


def test_a_natd_site_dials_out_from_its_public_address_and_cannot_be_dialed(planet: Build) -> None:
    wan = planet(_homes())
    assert wan.topology.address("home") != wan.topology.public_address("home")
    seen_ip, _ = _peer_seen_by(wan, "home", "pub")
    assert seen_ip == wan.topology.public_address("home")  # the inside address never leaves the site
    assert connects(wan, "home", "pub")
    assert not connects(wan, "pub", "home")  # to the inside address: routed nowhere
    port = next(_PORTS)  # to the public address, on a port it listens on inside: unsolicited
    listener = netns.socket_in(wan.netns_of("home"))
    listener.bind((wan.topology.address("home"), port))
    listener.listen()
    try:
        with netns.socket_in(wan.netns_of("pub")) as sock:
            sock.settimeout(0.6)
            try:
                sock.connect((wan.topology.public_address("home"), port))
                raise AssertionError("an unsolicited dial through the NAT opened")
            except TimeoutError:
                pass  # dropped silently, as a home NAT does: no RST, a timeout
    finally:
        listener.close()
    assert wan.stats()["nat_dropped"] > 0


def test_one_inside_port_keeps_its_public_port_across_destinations(planet: Build) -> None:
    wan = planet(_homes())
    local = next(_PORTS)
    first = _peer_seen_by(wan, "home", "pub", bind_port=local)
    second = _peer_seen_by(wan, "home", "pub2", bind_port=local)
    assert first == second == (wan.topology.public_address("home"), local)  # mapped once, port kept
    tables = [m for m in wan.nat_table("home") if m["inside"].endswith(f":{local}")]
    assert len(tables) == 1 and len(tables[0]["remotes"]) == 2


def test_simultaneous_open_between_two_natd_sites_punches_through(planet: Build) -> None:
    wan = planet(_homes())
    a_port, b_port = next(_PORTS), next(_PORTS)
    a = netns.socket_in(wan.netns_of("home"))
    b = netns.socket_in(wan.netns_of("home2"))
    results: dict[str, object] = {}

    def dial(name: str, sock: socket.socket, local: tuple[str, int], remote: tuple[str, int]) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(local)
        sock.settimeout(8)
        try:
            sock.connect(remote)
            sock.sendall(name.encode())
            results[name] = sock.recv(16)
        except OSError as exc:
            results[name] = exc

    with a, b:
        # each side's first SYN opens its own NAT for the other's public endpoint and is dropped
        # at the other NAT; the retransmitted ones cross: a TCP simultaneous open
        threads = [
            threading.Thread(
                target=dial,
                args=("a", a, (wan.topology.address("home"), a_port), (wan.topology.public_address("home2"), b_port)),
            ),
            threading.Thread(
                target=dial,
                args=("b", b, (wan.topology.address("home2"), b_port), (wan.topology.public_address("home"), a_port)),
            ),
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert results == {"a": b"b", "b": b"a"}, results
    assert time.monotonic() - started < 8
    assert not connects(wan, "pub", "home")  # the punched hole is for that endpoint only
