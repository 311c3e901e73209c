"""What a standby adopts of the active node's receipts (hostile ones stop it), and the progress
protocol's bounds: a malformed request gets an empty answer, a malformed reply is refused."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest

from agents import receipt as receipts
from node.triggers.model import Cursor, TriggerKind, TriggerSpec
from node.triggers.protocol import (
    MAX_RECEIPTS,
    Progress,
    TriggerProtocolError,
    encode_receipts,
    parse_progress,
    parse_receipts,
)
from node.triggers.standby import adopt
from storage import dagcbor
from storage.cid import CID
from storage.peerid import peer_id_for

ACTIVE = nacl.signing.SigningKey(b"a" * 32)
OTHER = nacl.signing.SigningKey(b"o" * 32)
AGENT = CID.for_block(b"agent")
STREAM = "st" + "b" * 52
SPEC = TriggerSpec("t", AGENT, TriggerKind.STREAM, STREAM, every_n=2, standby=peer_id_for(bytes(ACTIVE.verify_key)))


def _receipt(first: int, last: int, key: nacl.signing.SigningKey = ACTIVE, **changes: Any) -> bytes:
    run = receipts.TriggerRun(changes.pop("trigger", "t"), changes.pop("stream", STREAM), first, last,
                              tuple(CID.for_block(bytes([n])) for n in range(first, last + 1)),
                              CID.for_block(b"state %d" % last))  # fmt: skip
    usage = receipts.Usage(0.0, 0, 0.0, 0, 0)
    record = receipts.Receipt("j", changes.pop("agent", AGENT), {}, None, "ok", "python", "3", usage, 0.0, 0.0,
                              peer_id_for(bytes(key.verify_key)), trigger=run)  # fmt: skip
    return receipts.sign(record, key)


def test_receipts_that_continue_the_cursor_are_adopted_in_order() -> None:
    adopted = adopt(SPEC, Cursor(), [_receipt(1, 2), _receipt(3, 4)])
    assert [(a.cursor.seq, a.cursor.invocations) for a in adopted] == [(2, 1), (4, 2)]
    assert adopted[-1].state == CID.for_block(b"state 4") == adopted[-1].cursor.state


@pytest.mark.parametrize(
    "bad",
    [
        _receipt(1, 2, OTHER),  # signed by another node than the active one
        _receipt(1, 2, trigger="u"),
        _receipt(1, 2, stream="st" + "c" * 52),
        _receipt(1, 2, agent=CID.for_block(b"other agent")),
        _receipt(2, 3),  # skips entry 1
        b"\xa0",  # not a receipt
    ],
)
def test_a_receipt_that_does_not_check_out_stops_adoption(bad: bytes) -> None:
    assert adopt(SPEC, Cursor(), [bad, _receipt(1, 2)]) == []
    assert [a.cursor.seq for a in adopt(SPEC, Cursor(), [_receipt(1, 2), bad])] == [2]


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",
        dagcbor.encode({"op": "progress", "trigger": "t"}),
        dagcbor.encode({"op": "progress", "trigger": "Bad!", "after": 0}),
        dagcbor.encode({"op": "progress", "trigger": "t", "after": -1}),
        dagcbor.encode({"op": "progress", "trigger": "t", "after": True}),
        dagcbor.encode({"op": "progress", "trigger": "t" * 300, "after": 0}),
    ],
)
def test_malformed_progress_requests_are_refused(raw: bytes) -> None:
    with pytest.raises(TriggerProtocolError):
        parse_progress(raw)


def test_progress_round_trips_and_replies_are_bounded() -> None:
    assert parse_progress(Progress("t", 7).encode()) == Progress("t", 7)
    assert parse_receipts(encode_receipts([b"r"] * (MAX_RECEIPTS + 5))) == [b"r"] * MAX_RECEIPTS
    for frames in ([], [b"x", b"y"], [dagcbor.encode({"op": "progress", "receipts": [1]})],
                   [dagcbor.encode({"op": "progress", "receipts": [b"r"] * (MAX_RECEIPTS + 1)})]):  # fmt: skip
        with pytest.raises(TriggerProtocolError):
            parse_receipts(frames)
