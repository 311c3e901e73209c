"""Which peers speak only an older job-protocol version, learnt the way libp2p negotiates.

The job protocol grows by minor versions, each a protocol ID of its own: ``/mycel/job/2.1.0``
is 2.0.0 plus ``offer_run``. An executor serves every version it knows on one handler. A
requester opens the stream on the newest version a message needs; a peer of an older release
answers multistream-select "na" to it, which the host reports as the typed
:class:`node.errors.ProtocolNotSupported` (no text is parsed here), and the requester then says
the same thing in the older version's messages, to the same peer (``offer``, then ``run``). So a
mixed-version network loses no candidate to a version mismatch.

The answer is remembered per peer (bounded, oldest first out), so later jobs go straight to the
older form without the extra negotiation; it expires, so a peer that upgraded is asked again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

OLDER_TTL = 3600.0  # seconds a peer is taken to speak only the older version
OLDER_SIZE = 4096  # peers remembered at once


class OlderPeers:
    """Peers that answered "na" to the newer protocol version, for ``ttl`` seconds each."""

    def __init__(
        self, ttl: float = OLDER_TTL, size: int = OLDER_SIZE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._until: OrderedDict[str, float] = OrderedDict()

    def remember(self, peer: str) -> None:
        self._until.pop(peer, None)
        self._until[peer] = self.clock() + self.ttl
        while len(self._until) > self.size:
            self._until.popitem(last=False)

    def has(self, peer: str) -> bool:
        """Whether ``peer`` said, within ``ttl``, that it speaks only the older version."""
        until = self._until.get(peer)
        if until is None:
            return False
        if until < self.clock():
            del self._until[peer]
            return False
        return True

    def __len__(self) -> int:
        return len(self._until)
