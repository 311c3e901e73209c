"""Fencing a trigger's active node against the standby that took over from it.

A stream trigger deployed with ``follower = PEER`` (the standby's peer ID) runs stop-and-wait:
after each committed invocation it waits until PEER acknowledges holding that receipt (a
progress request asking for receipts after it) before it publishes the invocation's output and
runs the next batch. A standby takes over after the last receipt it adopted, so every output
that reached the output stream belongs to a receipt the standby holds, and the standby never
runs those entries again.

When the standby takes over it tells the old active node (``fence``, with the invocation it took
over after), again and again until that node answers, so an active node that was only cut off
learns it when the network heals: it publishes the outputs of invocations up to that point
(acknowledged by the standby's adoption, whose acknowledgement may have been lost in the cut),
voids the later one (committed here, never adopted: the standby ran its entries), and runs the
trigger no more. While cut off it runs at most one invocation past the last acknowledgement and
publishes nothing of it: the price of the guarantee is that a trigger with a follower stalls
when it cannot reach its follower.
"""

from __future__ import annotations

import enum

from node.triggers.model import Cursor


class Verdict(enum.Enum):
    WAIT = "wait"  # the follower does not hold the last receipt yet
    PUBLISH = "publish"  # publish the last invocation's output (if any) and go on
    PUBLISH_AND_STOP = "publish_and_stop"  # fenced after the last invocation: publish it, run no more
    VOID = "void"  # fenced before the last invocation: its output is never published, run no more


def verdict(cursor: Cursor, acknowledged: int) -> Verdict:
    """What the active node may do with its last committed invocation."""
    if cursor.fenced:
        return Verdict.PUBLISH_AND_STOP if cursor.invocations <= cursor.fenced_at else Verdict.VOID
    return Verdict.PUBLISH if acknowledged >= cursor.invocations else Verdict.WAIT
