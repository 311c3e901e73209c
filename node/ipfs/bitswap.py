"""The node's Bitswap endpoint (/ipfs/bitswap/1.2.0, 1.1.0, 1.0.0): IPFS peers fetch our
blocks and we fetch theirs.

Every inbound message is decoded in a thread of the endpoint's own (bounded: 4 MiB per
message, entry and block counts capped, every CID parsed), then split: wantlist entries
go to :class:`~node.ipfs.bitswap_server.BitswapServer`, blocks and presences to
:class:`~node.ipfs.bitswap_client.BitswapClient`. Received blocks are hashed only when
this node is waiting on that peer for something, so unasked blocks cost a peer's
bandwidth, not our CPU. A malformed message is dropped and counted; the stream carrying
it is not answered.

py-libp2p ships a Bitswap of its own; it is not used because every block served here must
pass the node's privacy gate and come from the verified LMDB store, under the bounds above.

Bitswap streams are one-way: the host reads messages from streams peers open and sends
ours on new streams (``P2PNetwork.handle_messages`` / ``send_messages``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from node.ipfs.bitswap_client import BitswapClient
from node.ipfs.bitswap_pb import (
    MAX_MESSAGE,
    BitswapMessageError,
    Message,
    decode,
    prefix_fields,
)
from node.ipfs.bitswap_server import PROTOCOLS, SEND_TIMEOUT, BitswapServer, ServingGate
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from storage.blockstore import BlockStore, VerifiedBlock, identify_block
from storage.cid import CID, SHA2_256
from storage.errors import StorageError

log = logging.getLogger("mycelnet.bitswap")
THREADS = 4
T = TypeVar("T")


@dataclass
class Received:
    message: Message
    blocks: list[VerifiedBlock]
    unwanted: int


class Bitswap:
    def __init__(self, store: BlockStore, network: P2PNetwork, metrics: Metrics, gate: ServingGate) -> None:
        self.network = network
        self.metrics = metrics
        self._io = ThreadPoolExecutor(THREADS, thread_name_prefix="bitswap")
        self.server = BitswapServer(store, gate, metrics, self._send, self._off_loop)
        self.client = BitswapClient(self._send, PROTOCOLS, metrics)
        network.handle_messages(PROTOCOLS, self._on_message, MAX_MESSAGE)

    async def close(self) -> None:
        """Stop serving (after the network has stopped) and the decoding threads."""
        await self.server.close()
        self._io.shutdown(wait=True, cancel_futures=True)

    async def _off_loop(self, work: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, work, *args)

    async def _send(self, peer: str, protocols: Sequence[str], messages: Sequence[bytes]) -> str:
        return await self.network.send_messages(peer, protocols, messages, SEND_TIMEOUT)

    async def _on_message(self, peer: str, protocol: str, data: bytes) -> None:
        self.metrics.inc("bitswap_messages_received_total")
        try:
            received = await self._off_loop(_parse, data, self.client.wanted_from(peer))
        except BitswapMessageError as exc:
            self.metrics.inc("bitswap_messages_refused_total")
            log.info("bitswap: refused a message from %s: %s", peer, exc)
            return
        message = received.message
        if received.blocks or received.unwanted:
            self.client.on_blocks(peer, received.blocks, received.unwanted)
        if message.presences:
            self.client.on_presences(peer, message.presences)
        if message.entries or message.full:
            self.server.on_wantlist(peer, protocol, message.entries, message.full)


def _parse(data: bytes, wanted: frozenset[CID]) -> Received:
    """Decode a message and hash the blocks that answer our wants, each once (in a bitswap thread).

    A payload names only its CID's prefix: the block is hashed once with that prefix's hash
    and matched by digest against the CIDs of that prefix we wait for
    (:func:`~storage.blockstore.identify_block`), which is also the proof the store takes.
    """
    message = decode(data)
    blocks: list[VerifiedBlock] = []
    unwanted = 0
    if not wanted:
        return Received(message, blocks, len(message.payload) + len(message.blocks))
    by_prefix: dict[tuple[int, int, int], dict[bytes, CID]] = {}
    sha256: dict[bytes, CID] = {}  # 1.0.0 sends bare bytes: a CIDv0, or a v1 CID we asked for with that digest
    for cid in wanted:
        by_prefix.setdefault((cid.version, cid.codec, cid.hash_code), {})[cid.digest] = cid
        if cid.hash_code == SHA2_256 and (cid.version == 0 or cid.digest not in sha256):
            sha256[cid.digest] = cid
    found: list[VerifiedBlock | None] = []
    for item in message.payload:
        try:
            version, codec, mh_code, _ = prefix_fields(item.prefix)
        except BitswapMessageError:
            unwanted += 1
            continue
        candidates = by_prefix.get((version, codec, mh_code))
        found.append(_identify(item.data, mh_code, candidates) if candidates else None)
    found += [_identify(block, SHA2_256, sha256) if sha256 else None for block in message.blocks]
    for block in found:
        if block is None:
            unwanted += 1
        else:
            blocks.append(block)
    return Received(message, blocks, unwanted)


def _identify(data: bytes, hash_code: int, candidates: dict[bytes, CID]) -> VerifiedBlock | None:
    try:
        return identify_block(data, hash_code, candidates)
    except StorageError:  # over the block size limit
        return None
