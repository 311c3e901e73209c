"""Check a gossip peer's signed peer record once, not on every RPC it sends (py-libp2p 0.8.x).

py-libp2p's Pubsub puts its signed peer record (an Envelope: the peer's addresses, signed
with its key) in every RPC it sends, and checks the one in every RPC it receives: it parses
the envelope, verifies its Ed25519 signature, parses the addresses and rewrites the peer's
addresses in the peerstore. A control RPC is checked twice (by Pubsub, then by GossipSub).
A peer sends the same record until its addresses change, so an idle node re-verified the
same bytes for every announcement copy and every IHAVE from every peer: work that grows
with the number of peers (seen in a profile of an idle node as Envelope parsing and
Ed25519 verification next to the announcements' own).

:class:`SenderRecords` wraps py-libp2p's ``maybe_consume_signed_record``: a record whose
bytes equal the last one accepted from the same peer by the same host within
``REVERIFY_SECONDS`` is accepted as it was then (the same bytes verify the same way); any
other record, and every record after that time (which also refreshes its addresses' TTL in
the peerstore), goes through py-libp2p's own check. A record that fails is never kept.

:func:`install` puts it in both modules that import the function (``check_shape`` says what
no longer matches; ``tests/node/p2p/test_gossip_cost.py`` fails on it).
"""

from __future__ import annotations

import importlib
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mycelnet.p2p")

MODULES = ("libp2p.pubsub.pubsub", "libp2p.pubsub.gossipsub")
NAME = "maybe_consume_signed_record"
REVERIFY_SECONDS = 60.0
KEPT_PER_HOST = 1024  # peers whose last accepted record is remembered, per host

Consume = Callable[[Any, Any, Any], bool]


class SenderRecords:
    def __init__(self, original: Consume, clock: Callable[[], float] = time.monotonic) -> None:
        self.original = original
        self._clock = clock
        self._accepted: weakref.WeakKeyDictionary[Any, OrderedDict[Any, tuple[bytes, float]]] = (
            weakref.WeakKeyDictionary()
        )
        self.checked = 0  # records handed to py-libp2p's check, in all
        self.skipped = 0  # records accepted as the same bytes accepted recently

    def __call__(self, msg: Any, host: Any, peer_id: Any) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        record = bytes(msg.senderRecord)
        now = self._clock()
        accepted = self._accepted.setdefault(host, OrderedDict())
        last = accepted.get(peer_id)
        if last is not None and last[0] == record and now - last[1] < REVERIFY_SECONDS:
            self.skipped += 1
            return True
        self.checked += 1
        if not self.original(msg, host, peer_id):
            accepted.pop(peer_id, None)
            return False
        accepted[peer_id] = (record, now)
        accepted.move_to_end(peer_id)
        while len(accepted) > KEPT_PER_HOST:
            accepted.popitem(last=False)
        return True


def check_shape() -> list[str]:
    """What about py-libp2p differs from what :func:`install` expects (empty when all matches)."""
    problems = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            problems.append(f"{name} does not exist any more")
            continue
        function = getattr(module, NAME, None)
        if not isinstance(function, SenderRecords) and getattr(function, "__name__", "") != NAME:
            problems.append(f"{name}.{NAME} is not py-libp2p's sender-record check any more")
    return problems


def install() -> SenderRecords | None:
    """Wrap the sender-record check in both pubsub modules (idempotent); None if they changed shape."""
    problems = check_shape()
    if problems:
        log.warning("sender-record check left as it is (py-libp2p internals changed): %s", "; ".join(problems))
        return None
    modules = [importlib.import_module(name) for name in MODULES]
    current = getattr(modules[0], NAME)
    wrapper = current if isinstance(current, SenderRecords) else SenderRecords(current)
    for module in modules:
        setattr(module, NAME, wrapper)
    return wrapper
