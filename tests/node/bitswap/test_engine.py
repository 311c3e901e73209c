"""The Bitswap server and client on a real LMDB store and privacy registry (no network: the
sender is recorded). Interop with real IPFS peers is tested in test_helia_interop.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import nacl.signing
import pytest

from node.ipfs import bitswap_pb as pb
from node.ipfs.bitswap import _parse
from node.ipfs.bitswap_client import BitswapClient, BitswapUnavailable
from node.ipfs.bitswap_pb import BlockPresence, Message, Payload, Presence, WantEntry, WantType
from node.ipfs.bitswap_server import (
    BITSWAP_100,
    BITSWAP_110,
    BITSWAP_120,
    MAX_WANTS_PER_PEER,
    MESSAGE_BUDGET,
    PROTOCOLS,
    BitswapServer,
)
from node.metrics import Metrics
from node.privacy.gate import ServingGate
from node.privacy.registry import PrivacyRegistry
from storage.blockstore import BlockStore
from storage.cid import CID, RAW
from storage.peerid import peer_id_for
from storage.privacy.policy import Policy

HOLDER = peer_id_for(bytes(nacl.signing.SigningKey.generate().verify_key))
STRANGER = peer_id_for(bytes(nacl.signing.SigningKey.generate().verify_key))


class Sent:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], list[Message]]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, peer: str, protocols: Sequence[str], messages: Sequence[bytes]) -> str:
        self.calls.append((peer, list(protocols), [pb.decode(m) for m in messages]))
        self.arrived.set()
        return protocols[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlockStore]:
    opened = BlockStore(tmp_path / "blocks")
    yield opened
    opened.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[PrivacyRegistry]:
    opened = PrivacyRegistry(tmp_path / "privacy")
    yield opened
    opened.close()


def _put(store: BlockStore, data: bytes) -> CID:
    cid = CID.for_block(data, RAW)
    store.put(cid, data)
    return cid


def _server(store: BlockStore, registry: PrivacyRegistry, metrics: Metrics, sent: Sent) -> BitswapServer:
    async def inline(work: object, *args: object) -> list[bytes]:
        assert callable(work)
        result: list[bytes] = await asyncio.to_thread(work, *args)
        return result

    return BitswapServer(store, ServingGate(registry, lambda peer: None), metrics, sent, inline)


def test_answers_have_dont_have_and_blocks_per_protocol_version(store: BlockStore, registry: PrivacyRegistry) -> None:
    metrics, sent = Metrics(), Sent()
    server = _server(store, registry, metrics, sent)
    held = _put(store, b"held block")
    absent = CID.for_block(b"absent", RAW)
    wants = [
        WantEntry(held, want_type=WantType.HAVE, send_dont_have=True),
        WantEntry(absent, want_type=WantType.HAVE, send_dont_have=True),
        WantEntry(absent, want_type=WantType.HAVE, send_dont_have=False),
    ]
    (message,) = server.answer(STRANGER, BITSWAP_120, wants)
    assert message.presences == [BlockPresence(held, Presence.HAVE), BlockPresence(absent, Presence.DONT_HAVE)]
    (message,) = server.answer(STRANGER, BITSWAP_120, [WantEntry(held), WantEntry(absent, send_dont_have=True)])
    assert message.payload == [Payload(pb.prefix_of(held), b"held block")]
    assert message.presences == [BlockPresence(absent, Presence.DONT_HAVE)]
    assert pb.cid_of_payload(message.payload[0].prefix, message.payload[0].data) == held
    (message,) = server.answer(STRANGER, BITSWAP_110, [WantEntry(held), WantEntry(absent, send_dont_have=True)])
    assert message.payload and not message.presences  # presences are 1.2.0 only
    (message,) = server.answer(STRANGER, BITSWAP_100, [WantEntry(held)])
    assert message.blocks == [b"held block"] and not message.payload
    assert metrics.value("bytes_out_total") == 3 * len(b"held block")


def test_a_private_block_is_answered_like_one_not_held(store: BlockStore, registry: PrivacyRegistry) -> None:
    metrics, sent = Metrics(), Sent()
    server = _server(store, registry, metrics, sent)
    owner = nacl.signing.SigningKey.generate()
    owner_id = peer_id_for(bytes(owner.verify_key))
    root, leaf = _put(store, b"private root"), _put(store, b"private leaf")
    registry.lock(root, owner_id, [root, leaf])
    policy = Policy(root, owner_id, 1, int(time.time()) + 60, holders=(HOLDER,))
    registry.apply(policy.sign(lambda m: bytes(owner.sign(m).signature)).data)
    wants = [WantEntry(leaf, send_dont_have=True), WantEntry(root, want_type=WantType.HAVE, send_dont_have=True)]
    (message,) = server.answer(STRANGER, BITSWAP_120, wants)
    assert not message.payload and not message.blocks
    assert message.presences == [BlockPresence(leaf, Presence.DONT_HAVE), BlockPresence(root, Presence.DONT_HAVE)]
    assert server.answer(STRANGER, BITSWAP_100, [WantEntry(leaf)]) == []  # 1.0.0: silence, not the bytes
    assert metrics.value("bytes_out_total") == 0
    assert metrics.value("private_blocks_refused_total") == 3
    (message,) = server.answer(HOLDER, BITSWAP_120, wants)  # the holder the policy names gets them
    assert message.payload == [Payload(pb.prefix_of(leaf), b"private leaf")]
    assert message.presences == [BlockPresence(root, Presence.HAVE)]


def test_messages_stay_under_the_receivers_limit(store: BlockStore, registry: PrivacyRegistry) -> None:
    server = _server(store, registry, Metrics(), Sent())
    cids = [_put(store, bytes([i]) * (1 << 20)) for i in range(9)]  # 9 MiB in 1 MiB blocks
    messages = server.answer(STRANGER, BITSWAP_120, [WantEntry(cid) for cid in cids])
    assert [len(m.payload) for m in messages] == [3, 3, 3]
    assert all(len(pb.encode(m)) <= MESSAGE_BUDGET for m in messages)


def test_ledger_bounds_cancel_and_full_wantlist(store: BlockStore, registry: PrivacyRegistry) -> None:
    async def run() -> None:
        metrics, sent = Metrics(), Sent()
        server = _server(store, registry, metrics, sent)
        held = _put(store, b"served")
        many = [WantEntry(CID.for_block(str(i).encode(), RAW)) for i in range(MAX_WANTS_PER_PEER + 10)]
        server.on_wantlist(STRANGER, BITSWAP_120, many, False)
        assert metrics.value("bitswap_wants_dropped_total") == 10
        server.on_wantlist(STRANGER, BITSWAP_120, [WantEntry(e.cid, cancel=True) for e in many], False)
        server.on_wantlist(STRANGER, BITSWAP_120, [WantEntry(held)], True)  # full: replaces the rest
        await asyncio.wait_for(sent.arrived.wait(), 10)
        while server._ledgers:  # the peer's ledger is dropped once answered
            await asyncio.sleep(0.01)
        blocks = [p for _, _, messages in sent.calls for m in messages for p in m.payload]
        assert blocks == [Payload(pb.prefix_of(held), b"served")]
        await server.close()

    asyncio.run(run())


def test_client_takes_only_asked_blocks_with_the_right_bytes() -> None:
    async def run() -> None:
        metrics, sent = Metrics(), Sent()
        client = BitswapClient(sent, PROTOCOLS, metrics)
        good, other = CID.for_block(b"good", RAW), CID.for_block(b"other", RAW)
        fetching = asyncio.ensure_future(client.get_blocks("peer", [good], timeout=5))
        await asyncio.wait_for(sent.arrived.wait(), 5)
        (_, protocols, (want,)) = sent.calls[0]
        assert protocols == list(PROTOCOLS)
        assert want.entries == [WantEntry(good, priority=1, send_dont_have=True)]
        reply = Message(payload=[Payload(pb.prefix_of(good), b"forged"), Payload(pb.prefix_of(other), b"other")])
        received = _parse(pb.encode(reply), client.wanted_from("peer"))
        assert received.blocks == [] and received.unwanted == 2  # wrong bytes and an unasked block
        client.on_blocks("peer", received.blocks, received.unwanted)
        received = _parse(pb.encode(Message(payload=[Payload(pb.prefix_of(good), b"good")])), frozenset([good]))
        client.on_blocks("other-peer", received.blocks, 0)  # the right bytes from a peer not asked
        assert not fetching.done()
        client.on_blocks("peer", received.blocks, 0)
        (block,) = await fetching
        assert block.cid == good and block.data == b"good"
        assert metrics.value("bitswap_unwanted_blocks_total") == 2
        assert client.wanted_from("peer") == frozenset()

    asyncio.run(run())


def test_client_dont_have_fails_fast_and_silence_times_out_with_a_cancel() -> None:
    async def run() -> None:
        sent = Sent()
        client = BitswapClient(sent, PROTOCOLS, Metrics())
        cid = CID.for_block(b"x", RAW)
        fetching = asyncio.ensure_future(client.get_blocks("peer", [cid], timeout=30))
        await asyncio.wait_for(sent.arrived.wait(), 5)
        client.on_presences("peer", [BlockPresence(cid, Presence.DONT_HAVE)])
        with pytest.raises(BitswapUnavailable, match="does not have"):
            await asyncio.wait_for(fetching, 5)
        sent.calls.clear()
        with pytest.raises(BitswapUnavailable, match="0 of 1 blocks"):
            await client.get_blocks("peer", [cid], timeout=0.05)
        assert sent.calls[-1][2][0].entries == [WantEntry(cid, priority=0, cancel=True)]
        having = asyncio.ensure_future(client.has("peer", cid, timeout=5))
        await asyncio.sleep(0)
        client.on_presences("peer", [BlockPresence(cid, Presence.HAVE)])
        assert await having
        assert not await client.has("peer", cid, timeout=0.05)

    asyncio.run(run())


def test_two_callers_waiting_on_one_block_both_get_it() -> None:
    async def run() -> None:
        sent = Sent()
        client = BitswapClient(sent, PROTOCOLS, Metrics())
        cid = CID.for_block(b"shared", RAW)
        first = asyncio.ensure_future(client.get_blocks("peer", [cid], timeout=5))
        second = asyncio.ensure_future(client.get_blocks("peer", [cid], timeout=0.2))
        with pytest.raises(BitswapUnavailable):
            await second  # the second gives up first: the first still waits on the want
        received = _parse(
            pb.encode(Message(payload=[Payload(pb.prefix_of(cid), b"shared")])), client.wanted_from("peer")
        )
        client.on_blocks("peer", received.blocks, received.unwanted)
        (block,) = await asyncio.wait_for(first, 5)
        assert block.data == b"shared"

    asyncio.run(run())
