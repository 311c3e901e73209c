"""A multi-MiB reply over real libp2p: how many window updates the requester sends, and whether
the replying side ever waits for credit (py-libp2p's writer polls every 10 ms when it does)."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import nacl.signing
import pytest
from libp2p.stream_muxer.yamux import yamux

from node.identity import NodeIdentity
from node.p2p.host import REQUEST_WINDOW
from node.p2p.network import P2PNetwork

PROTOCOL = "/mycel/test-reply/1.0.0"
REPLY = [os.urandom(256 << 10) for _ in range(16)]  # one /mycel/blocks batch: 16 blocks of 256 KiB


async def _reply(peer: str, request: bytes) -> list[bytes]:
    return REPLY


@pytest.fixture
async def pair() -> AsyncIterator[tuple[P2PNetwork, P2PNetwork]]:
    server, client = (
        P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"]) for _ in "ab"
    )
    server.handle(PROTOCOL, _reply)
    for network in (server, client):
        await network.start()
    await client.connect((await server.addrs())[0])
    yield server, client
    for network in (client, server):
        await network.stop()


class _Frames:
    """Yamux frames written per side (the dialer is the requester here), and zero-window waits."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.credits: dict[bool, list[int]] = {True: [], False: []}
        self.data: dict[bool, int] = {True: 0, False: 0}
        self.zero_window_waits = 0
        original = yamux.Yamux._write_frame
        frames = self

        async def counting(conn: Any, data: bytes) -> None:
            _, kind, flags, _, length = struct.unpack(yamux.YAMUX_HEADER_FORMAT, data[: yamux.HEADER_SIZE])
            side = bool(conn.is_initiator_value)
            if kind == yamux.TYPE_WINDOW_UPDATE and not flags and length:
                frames.credits[side].append(length)
            elif kind == yamux.TYPE_DATA:
                frames.data[side] += 1
            await original(conn, data)

        def waits(stream: Any) -> int:
            return int(stream.__dict__.get("_waits", 0))

        def count_wait(stream: Any, value: int) -> None:
            frames.zero_window_waits += value > waits(stream)
            stream.__dict__["_waits"] = value

        monkeypatch.setattr(yamux.Yamux, "_write_frame", counting)
        monkeypatch.setattr(yamux.YamuxStream, "_zero_window_waits", property(waits, count_wait), raising=False)


async def test_a_4_mib_reply_needs_one_grant_and_no_credit_per_frame(
    pair: tuple[P2PNetwork, P2PNetwork], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = pair
    await client.request(server.peer_id, PROTOCOL, b"warm")  # the connection's first stream settles
    frames = _Frames(monkeypatch)
    requests = 4
    for _ in range(requests):
        reply = await client.request(server.peer_id, PROTOCOL, b"want")
        assert reply == REPLY
    reply_frames = frames.data[False]
    assert reply_frames >= requests * 64  # 4 MiB in frames of under 64 KiB each
    # one grant of the reply's size per request, then credit only in halves of that window:
    # upstream credited every frame read (about as many updates as data frames)
    assert len(frames.credits[True]) <= 3 * requests
    assert sum(1 for credit in frames.credits[True] if credit >= REQUEST_WINDOW // 2) >= requests
    assert frames.zero_window_waits == 0  # the server never waited for credit
