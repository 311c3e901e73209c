"""Replace pubsub streams left behind on closed connections (a py-libp2p 0.8.1 gap).

When a peer goes away and comes back at once (same key), Pubsub can keep the old, dead stream
in ``peers`` after its connection closed, and then skips the new connection, since the peer
"already has a pubsub stream". Our hello (the topics we subscribe to) is never sent on the new
connection, so the restarted peer never learns that we subscribe and publishes nothing to us:
measured, none of a restarted peer's 30 messages over 9 s reached the node it was connected to.

:func:`repair` finds such peers (a pubsub stream whose connection is not one of the live
connections to the peer) and replaces the stream the way Pubsub itself does when a stream dies
while the peer is still connected. The peer's subscriptions are kept: they arrive on the peer's
own stream. Runs in the trio thread; the host calls it once a second (a dict walk over at most
``connections_high`` peers).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from libp2p.peer.id import ID

log = logging.getLogger("mycelnet.p2p")


def stale_peers(pubsub: Any) -> list[ID]:
    """Peers whose pubsub stream does not run over a live connection to them."""
    network = pubsub.host.get_network()
    stale = []
    for peer, stream in list(pubsub.peers.items()):
        live = {id(conn.muxed_conn) for conn in network.get_connections(peer) if not conn.is_closed}
        muxed = getattr(stream, "muxed_conn", None)
        if muxed is None or id(muxed) not in live or getattr(muxed, "is_closed", False):
            stale.append(peer)
    return stale


def repair(pubsub: Any) -> int:
    """Drop each stale stream and, for a peer still connected, open a new one (with our hello)."""
    stale = stale_peers(pubsub)
    for peer in stale:
        log.info("pubsub stream to %s ran over a closed connection: replacing it", peer)
        stream = pubsub.peers.pop(peer, None)
        queue = pubsub.peer_queues.pop(peer, None)
        if queue is not None:
            queue.close()  # its sending task ends
        with contextlib.suppress(Exception):  # the router may have dropped it already
            pubsub.router.remove_peer(peer)
        if stream is not None:
            pubsub.manager.run_task(_reset, stream)
        if pubsub.host.get_network().get_connections(peer):
            pubsub._schedule_peer_stream_retry(peer)  # opens a stream and sends the hello
    return len(stale)


async def _reset(stream: Any) -> None:
    with contextlib.suppress(Exception):
        await stream.reset()
