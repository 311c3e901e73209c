"""A standby's view of the active node's progress: which of its receipts to adopt, and how.

A standby holds a replica of the trigger's stream and asks the active node for its receipts
(:mod:`node.triggers.protocol`). It adopts a receipt only if it checks out: signed by the
active node, for this trigger and stream, an ``ok`` run (or a failed one, which consumed its
entries too) whose entries start right after the standby's cursor; the adopted receipt moves
the standby's cursor exactly as the active node's commit moved its own. When the active node
stops answering (TAKEOVER_MISSES requests in a row), the standby runs the trigger from its
cursor: the entries after the last receipt it adopted, with the state that receipt names.

A batch the active node committed after the standby's last request runs again on the
standby (its receipt died with the node), so the standby's history, which is the one that
goes on, still names every entry exactly once. Outputs continue in the standby's own output
stream (its key is its own). An active node that names the standby as its ``follower`` is
fenced (:mod:`node.triggers.fence`): then no output is published twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents import receipt as receipts
from agents.errors import ReceiptError
from node.triggers.model import Cursor, TriggerSpec
from storage.cid import CID, DAG_CBOR

PROGRESS_SECONDS = 0.5  # between two progress requests to the active node
TAKEOVER_MISSES = 4  # requests in a row without an answer: the active node is taken for dead
REQUEST_SECONDS = 2.0  # one progress or fence request (a cut-off peer costs this per miss)
FENCE_RETRY_SECONDS = 1.0  # between two fence requests to an old active node that did not answer
MAX_STATE_BYTES = 256 << 20  # a state fetched from the active node (the fetch stops past it)


@dataclass(frozen=True)
class Adopted:
    raw: bytes
    cursor: Cursor
    state: CID | None  # to fetch and pin before the cursor is committed


def adopt(spec: TriggerSpec, cursor: Cursor, raws: list[bytes]) -> list[Adopted]:
    """The receipts of ``raws`` that continue ``cursor``, in order, with the cursor after each;
    stops at the first that does not check out (the rest cannot follow it)."""
    adopted: list[Adopted] = []
    for raw in raws:
        try:
            record = receipts.verify(raw)
        except ReceiptError:
            break
        run = record.trigger
        if record.node != spec.standby or run is None or run.trigger != spec.name or run.stream != spec.stream:
            break
        if record.agent != spec.agent or not run.entries or run.first_seq != cursor.seq + 1:
            break
        cursor = cursor.advanced(seq=run.last_seq, invocations=cursor.invocations + 1,
                                 receipt=CID.for_block(raw, DAG_CBOR), state=run.state)  # fmt: skip
        adopted.append(Adopted(raw, cursor, run.state))
    return adopted
