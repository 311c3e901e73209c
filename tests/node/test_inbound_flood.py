"""Issue 12: ~300 TCP connections that never finish a handshake must not lock new peers out.

A real node process is flooded with raw sockets on its libp2p port (silent, or stopping
inside the multistream header); a real libp2p peer must still connect and exchange a
message within seconds, and the node must close every idle socket after its handshake
timeout (set short here through ``MYCEL_P2P_HANDSHAKE_TIMEOUT_SECONDS``).

The flooding sockets come from other loopback addresses (127.0.0.2, or one 127.0.x.y per
socket) than the honest peer (127.0.0.1), so the per-IP and the total bounds are each
exercised.
"""

from __future__ import annotations

import asyncio
import selectors
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import nacl.signing
import pytest

from node.cluster import free_port, start_node_process, wait_answering
from node.identity import NodeIdentity, load_or_create
from node.p2p.network import P2PNetwork

HANDSHAKE_TIMEOUT = 1.5
FLOOD = 300
PARTIAL_MULTISTREAM = b"\x13/multistream/1.0"  # 19-byte message announced, 17 bytes sent


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One node with a short handshake timeout: (its /p2p multiaddr, its libp2p port)."""
    data_dir = tmp_path_factory.mktemp("flooded")
    peer_id = load_or_create(data_dir).peer_id
    port, api = free_port(), f"127.0.0.1:{free_port()}"
    env = {"MYCEL_P2P_HANDSHAKE_TIMEOUT_SECONDS": str(HANDSHAKE_TIMEOUT)}
    proc = start_node_process(data_dir, f"/ip4/127.0.0.1/tcp/{port}", api, [], "eu", env)
    wait_answering(proc, f"http://{api}", data_dir / "node.log")
    yield f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id}", port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def _flood(port: int, sources: list[str], first_bytes: bytes) -> list[socket.socket]:
    sockets = []
    for source in sources:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        if first_bytes:
            sock.sendall(first_bytes)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def _wait_all_closed(sockets: list[socket.socket], timeout: float) -> float:
    """Seconds until the node had closed every socket (EOF or reset); fails past ``timeout``."""
    started = time.monotonic()
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    open_count = len(sockets)
    while open_count:
        left = timeout - (time.monotonic() - started)
        assert left > 0, f"{open_count} of {len(sockets)} idle sockets still open after {timeout} s"
        for key, _ in selector.select(left):
            sock: Any = key.fileobj
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # a node may answer the multistream header first; only EOF counts
                selector.unregister(sock)
                open_count -= 1
    selector.close()
    return time.monotonic() - started


async def _join_and_ping(address: str) -> float:
    """Seconds for a fresh libp2p peer to connect to ``address`` and get a ping answered."""
    peer = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
    await peer.start()
    try:
        started = time.monotonic()
        peer_id = await peer.connect(address)
        await peer.ping(peer_id)
        return time.monotonic() - started
    finally:
        await peer.stop()


@pytest.mark.parametrize(
    ("sources", "first_bytes"),
    [
        pytest.param(["127.0.0.2"] * FLOOD, b"", id="silent-one-ip"),
        pytest.param(
            [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(FLOOD)],
            PARTIAL_MULTISTREAM,
            id="partial-header-many-ips",
        ),
    ],
)
def test_a_peer_joins_through_a_flood_of_unfinished_handshakes(
    target: tuple[str, int], sources: list[str], first_bytes: bytes
) -> None:
    address, port = target
    sockets = _flood(port, sources, first_bytes)
    try:
        flooded_at = time.monotonic()
        joined_in = asyncio.run(_join_and_ping(address))
        assert joined_in < 3.0, f"joining took {joined_in:.1f} s under the flood"
        _wait_all_closed(sockets, HANDSHAKE_TIMEOUT + 5.0 - (time.monotonic() - flooded_at))
    finally:
        for sock in sockets:
            sock.close()
