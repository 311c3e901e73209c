"""Request sessions (node.p2p.sessions): many requests on one libp2p stream, answered by id."""

from __future__ import annotations

import asyncio
import time

import nacl.signing
import pytest

from node.errors import NetworkError, ProtocolNotSupported
from node.identity import NodeIdentity
from node.p2p.network import P2PNetwork
from node.p2p.sessions import MAX_ANSWER_FRAMES, MAX_ID, answer_frame, parse_answer, parse_request, request_frame
from storage.varint import encode_uvarint

PROTOCOL = "/mycel/test-session/1.0.0"


def _unframed(data: bytes) -> bytes:
    """The payload of one length-prefixed frame (the test frames are all under 128 bytes)."""
    assert data[0] == len(data) - 1
    return data[1:]


def test_frames_round_trip_and_hostile_ones_are_refused() -> None:
    assert parse_request(_unframed(request_frame(300, b"offer"))) == (300, b"offer")
    assert parse_answer(_unframed(answer_frame(7, [b"a", b"", b"bc"]))) == (7, [b"a", b"", b"bc"])
    assert parse_answer(_unframed(answer_frame(7, []))) == (7, None)  # the serving side failed it
    too_many = encode_uvarint(1) + encode_uvarint(MAX_ANSWER_FRAMES + 1) + b"\x00" * (MAX_ANSWER_FRAMES + 1)
    hostile = [
        encode_uvarint(MAX_ID + 1) + encode_uvarint(0),  # an id out of range
        too_many,
        encode_uvarint(1) + encode_uvarint(1) + encode_uvarint(9) + b"short",  # a frame past the end
        _unframed(answer_frame(1, [b"x"])) + b"trailing",
        b"\xff" * 12,  # an endless varint
        b"",
    ]
    for data in hostile:
        with pytest.raises(NetworkError):
            parse_answer(data)


def _network() -> P2PNetwork:
    return P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])


def test_concurrent_requests_share_one_stream_and_a_dead_stream_fails_its_waiters_at_once() -> None:
    """Answers come back out of order, each to its own request; a failed request leaves the
    session usable; a peer that goes away fails what waits on it at once, not at its timeout."""

    async def scenario() -> None:
        server, client = _network(), _network()
        held = asyncio.Event()

        async def handler(peer: str, request: bytes) -> list[bytes]:
            if request == b"fail":
                raise RuntimeError("the handler broke")
            if request == b"hold":
                held.set()
                await asyncio.Event().wait()  # never answered
            await asyncio.sleep(0.001 * (20 - int(request)))  # the first sent is answered last
            return [b"answer " + request, b"second frame"]

        server.handle_session(PROTOCOL, handler, max_request=1024)
        await server.start()
        await client.start()
        try:
            peer = await client.connect((await server.addrs())[0])
            with pytest.raises(ProtocolNotSupported):
                await client.session_request(peer, "/mycel/test-unknown/1.0.0", b"1", timeout=10)
            opened = client.streams_opened()
            answers = await asyncio.gather(
                *(client.session_request(peer, PROTOCOL, str(i).encode(), timeout=10) for i in range(20))
            )
            assert answers == [[f"answer {i}".encode(), b"second frame"] for i in range(20)]
            with pytest.raises(NetworkError, match="failed"):
                await client.session_request(peer, PROTOCOL, b"fail", timeout=10)
            assert await client.session_request(peer, PROTOCOL, b"3", timeout=10) == [b"answer 3", b"second frame"]
            assert client.streams_opened() - opened == 1

            waiting = asyncio.create_task(client.session_request(peer, PROTOCOL, b"hold", timeout=60))
            await held.wait()
            started = time.monotonic()
            await server.stop()
            with pytest.raises(NetworkError):
                await waiting
            assert time.monotonic() - started < 30  # the stream's end, not the 60 s timeout
        finally:
            await client.stop()
            await server.stop()

    asyncio.run(scenario())
