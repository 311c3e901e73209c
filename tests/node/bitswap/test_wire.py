"""Bitswap on the wire against a real node process, from a Python libp2p peer that sends what
it likes: each protocol version gets answers in its own form, a malformed message is refused
without costing the stream's later messages, and an oversized one is not even read."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import nacl.signing
import pytest

from node.errors import NetworkError, ProtocolNotSupported
from node.identity import NodeIdentity
from node.ipfs import bitswap_pb as pb
from node.ipfs.bitswap_pb import BlockPresence, Message, Payload, Presence, WantEntry, WantType
from node.ipfs.bitswap_server import BITSWAP_100, BITSWAP_120, BITSWAP_LEGACY, PROTOCOLS
from node.p2p.network import P2PNetwork
from storage.cid import CID, RAW
from tests.node.test_cluster import http, metric
from tests.support import seeded_bytes


def test_versions_presences_and_a_malformed_message(cluster: Any) -> None:
    (node,) = cluster(1)
    data = seeded_bytes("wire", 5000)  # one chunk: stored as one raw block
    status, body = http("POST", f"{node.api_url}/v1/blobs", data, {"Content-Type": "application/octet-stream"})
    held = CID.parse(json.loads(body)["cid"])
    assert status == 201 and held == CID.for_block(data, RAW)
    absent = CID.for_block(b"not on the node", RAW)

    async def talk() -> None:
        inbox: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()

        async def receive(peer: str, protocol: str, message: bytes) -> None:
            await inbox.put((protocol, pb.decode(message)))

        peer = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
        peer.handle_messages(PROTOCOLS, receive, pb.MAX_MESSAGE)
        await peer.start()
        try:
            await peer.connect(node.multiaddr)

            async def send(protocol: str, *messages: bytes) -> tuple[str, Message]:
                assert await peer.send_messages(node.peer_id, [protocol], list(messages)) == protocol
                return await asyncio.wait_for(inbox.get(), 20)

            wants = [WantEntry(c, want_type=WantType.HAVE, send_dont_have=True) for c in (held, absent)]
            protocol, answer = await send(BITSWAP_120, pb.encode(Message(entries=wants)))
            assert protocol == BITSWAP_120
            assert answer.presences == [BlockPresence(held, Presence.HAVE), BlockPresence(absent, Presence.DONT_HAVE)]

            protocol, answer = await send(BITSWAP_100, pb.encode(Message(entries=[WantEntry(held)])))
            assert (protocol, answer.blocks, answer.payload) == (BITSWAP_100, [data], [])
            protocol, answer = await send(BITSWAP_LEGACY, pb.encode(Message(entries=[WantEntry(held)])))
            assert (protocol, answer.blocks) == (BITSWAP_LEGACY, [data])  # unversioned: 1.0.0's form

            garbage = b"\x0a\x05\x0a\x03"  # a wantlist that claims more bytes than it has
            valid = pb.encode(Message(entries=[WantEntry(held, send_dont_have=True)]))
            protocol, answer = await send(BITSWAP_120, garbage, valid)  # one stream, two messages
            assert answer.payload == [Payload(pb.prefix_of(held), data)]

            with contextlib.suppress(NetworkError):  # over 4 MiB: the node resets the stream unread
                await peer.send_messages(node.peer_id, [BITSWAP_120], [bytes(pb.MAX_MESSAGE + 1)])
            protocol, answer = await send(BITSWAP_120, valid)  # and goes on answering on a new one
            assert answer.payload == [Payload(pb.prefix_of(held), data)]

            # what lets a fetch fall back to Bitswap: a protocol the peer lacks is a typed refusal
            with pytest.raises(ProtocolNotSupported, match="does not speak /no/such/"):
                await peer.request(node.peer_id, "/no/such/1.0.0", b"")
        finally:
            await peer.stop()

    asyncio.run(talk())
    assert metric(node.api_url, "mycel_bitswap_messages_refused_total") == 1
    assert metric(node.api_url, "mycel_bitswap_messages_received_total") == 6  # the oversized one never read
    assert metric(node.api_url, "mycel_bitswap_blocks_sent_total") == 4
    status, _ = http("GET", f"{node.api_url}/v1/node")
    assert status == 200
