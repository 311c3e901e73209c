"""The host's one-way message streams (what Bitswap runs on), between two real libp2p hosts in
one process: a peer cannot hold more than MessageProtocol.max_streams_per_peer streams open."""

from __future__ import annotations

import asyncio
import contextlib

import nacl.signing

from node.errors import NetworkError
from node.identity import NodeIdentity
from node.p2p.host import MessageProtocol
from node.p2p.network import P2PNetwork

PROTOCOL = "/test/messages/1.0.0"


async def _ignore(peer: str, protocol: str, message: bytes) -> None:
    return None


PER_PEER = MessageProtocol(_ignore, max_message=1).max_streams_per_peer


def _network() -> P2PNetwork:
    return P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])


def test_streams_past_the_per_peer_bound_are_refused() -> None:
    async def run() -> None:
        release = asyncio.Event()
        seen: list[bytes] = []

        async def slow(peer: str, protocol: str, message: bytes) -> None:
            seen.append(message)
            await release.wait()  # each stream stays open while its message is being handled

        receiver, sender = _network(), _network()
        receiver.handle_messages([PROTOCOL], slow, 1024)
        await receiver.start()
        await sender.start()
        try:
            (address,) = [a for a in await receiver.addrs() if "127.0.0.1" in a]
            await sender.connect(f"{address}/p2p/{receiver.peer_id}" if "/p2p/" not in address else address)
            sends = [
                asyncio.ensure_future(sender.send_messages(receiver.peer_id, [PROTOCOL], [bytes([i])], 10))
                for i in range(PER_PEER + 3)
            ]
            for _ in range(200):  # wait until the receiver has taken what it will take
                if len(seen) >= PER_PEER and all(s.done() for s in sends):
                    break
                await asyncio.sleep(0.02)
            assert len(seen) == PER_PEER  # the rest were reset unread
            release.set()
            for send in sends:
                with contextlib.suppress(NetworkError):
                    await send
            assert await sender.send_messages(receiver.peer_id, [PROTOCOL], [b"after"], 10) == PROTOCOL
            for _ in range(200):
                if b"after" in seen:
                    break
                await asyncio.sleep(0.02)
            assert b"after" in seen  # the slots came back once the streams ended
        finally:
            release.set()
            await sender.stop()
            await receiver.stop()

    asyncio.run(run())
