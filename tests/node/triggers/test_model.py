"""The pure parts: the batching policy, schedules, request validation, the cursor's record, the
receipt's optional trigger key, and the store's commit (real LMDB)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from agents import receipt as receipts
from agents.errors import ReceiptError
from node.triggers.model import Cursor, TriggerError, TriggerKind, TriggerSpec, batch_wait, parse_request
from node.triggers.schedule import Schedule, ScheduleError
from node.triggers.store import TriggerStore
from storage import dagcbor
from storage.cid import CID
from storage.peerid import peer_id_for

AGENT = CID.for_block(b"agent")
STREAM = "st" + "a" * 52


def _spec(**changes: Any) -> TriggerSpec:
    return TriggerSpec("t", AGENT, TriggerKind.STREAM, STREAM, **changes)


@pytest.mark.parametrize(
    ("spec", "pending", "age_ms", "wait"),
    [
        (_spec(), 0, 0, None),  # nothing waits
        (_spec(), 1, 0, 0.0),  # neither set: every entry
        (_spec(every_n=10), 9, 10_000, None),  # N only: no timer
        (_spec(every_n=10), 10, 0, 0.0),
        (_spec(every_n=10), 25, 0, 0.0),
        (_spec(every_ms=500), 3, 100, 0.4),  # T only: due when the oldest is T old
        (_spec(every_ms=500), 3, 600, 0.0),
        (_spec(every_n=10, every_ms=500), 10, 0, 0.0),  # whichever first
        (_spec(every_n=10, every_ms=500), 2, 499, pytest.approx(0.001)),
    ],
)
def test_batching_every_n_or_every_t_whichever_first(spec: TriggerSpec, pending: int, age_ms: int, wait: Any) -> None:
    assert batch_wait(pending, age_ms, spec) == wait


def test_batch_size_bounds_what_one_invocation_takes() -> None:
    assert (_spec().batch_size, _spec(every_n=10).batch_size, _spec(every_ms=5).batch_size) == (1, 10, 256)


NOW = dt.datetime(2026, 12, 1, 19, 7, 30, tzinfo=dt.UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ("every 30s", NOW + dt.timedelta(seconds=30)),
        ("every 250ms", NOW + dt.timedelta(milliseconds=250)),
        ("* * * * *", dt.datetime(2026, 12, 1, 19, 8, tzinfo=dt.UTC)),
        ("*/15 * * * *", dt.datetime(2026, 12, 1, 19, 15, tzinfo=dt.UTC)),
        ("0 3 * * *", dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)),
        ("30 9 * * 1-5", dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)),
        ("0 0 1 1 *", dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ("0 12 * * 0,6", dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC)),  # Saturday
        ("0 12 * * 7", dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)),  # 7 is Sunday too
        ("0 0 15 * 5", dt.datetime(2026, 12, 4, tzinfo=dt.UTC)),  # DOM or DOW, as cron does: Friday 4th
        ("5,10-12/2 8 * * *", dt.datetime(2026, 12, 2, 8, 5, tzinfo=dt.UTC)),
    ],
)
def test_schedules_fire_when_cron_would(text: str, after: dt.datetime) -> None:
    assert Schedule.parse(text).next_after(NOW) == after


@pytest.mark.parametrize(
    "text",
    ["every 50ms", "every 3d", "* * * *", "60 * * * *", "* 24 * * *", "0 0 30 2 *", "MON * * * *", "*/0 * * * *"],
)
def test_bad_schedules_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(text)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], "bad_request"),
        ({"name": "Bad!", "kind": "invoke"}, "bad_name"),
        ({"name": "t", "kind": "cron"}, "bad_kind"),
        ({"name": "t", "kind": "stream", "stream": "nope"}, "bad_stream"),
        ({"name": "t", "kind": "stream", "stream": STREAM, "every_n": 257}, "bad_every_n"),
        ({"name": "t", "kind": "stream", "stream": STREAM, "every_ms": -1}, "bad_every_ms"),
        ({"name": "t", "kind": "stream", "stream": STREAM, "every_n": True}, "bad_every_n"),
        ({"name": "t", "kind": "invoke", "every_n": 3}, "bad_request"),
        ({"name": "t", "kind": "invoke", "schedule": "every 1s"}, "bad_request"),
        ({"name": "t", "kind": "schedule", "schedule": "soon"}, "bad_schedule"),
        ({"name": "t", "kind": "invoke", "output": "../x"}, "bad_output"),
        ({"name": "t", "kind": "invoke", "state": "not-a-cid"}, "bad_state"),
        ({"name": "t", "kind": "invoke", "colour": 1}, "bad_request"),
        ({"name": "t" * 300, "kind": "invoke"}, "bad_name"),
    ],
)
def test_hostile_requests_are_refused_by_field(body: Any, code: str) -> None:
    with pytest.raises(TriggerError) as refused:
        parse_request(body, AGENT)
    assert refused.value.code == code and refused.value.status == 400


def test_a_good_request_round_trips_through_its_record() -> None:
    body = {"name": "t", "kind": "stream", "stream": STREAM, "every_n": 5, "every_ms": 100, "output": "out",
            "state": str(AGENT)}  # fmt: skip
    spec = parse_request(body, AGENT)
    assert TriggerSpec.from_record(dagcbor.decode(dagcbor.encode(spec.record()))) == spec
    cursor = Cursor(seq=9, invocations=2, receipt=AGENT, state=AGENT, output_seq=2, output_entry=b"e")
    assert Cursor.from_record(dagcbor.decode(dagcbor.encode(cursor.record()))) == cursor


def _receipt(trigger: receipts.TriggerRun | None) -> receipts.Receipt:
    key = nacl.signing.SigningKey(b"k" * 32)
    usage = receipts.Usage(0.1, 1, 0.1, 1, 1)
    return receipts.Receipt("j", AGENT, {}, None, "ok", "python", "3", usage, 1.0, 2.0,
                            peer_id_for(bytes(key.verify_key)), trigger=trigger)  # fmt: skip


def test_the_trigger_key_is_absent_from_other_receipts_and_checked_when_present() -> None:
    key = nacl.signing.SigningKey(b"k" * 32)
    plain = receipts.sign(_receipt(None), key)
    assert "trigger" not in dagcbor.decode(plain)["receipt"]  # other receipts encode as before
    run = receipts.TriggerRun("t", STREAM, 3, 4, (AGENT, AGENT), AGENT)
    assert receipts.verify(receipts.sign(_receipt(run), key)).trigger == run
    for bad in (receipts.TriggerRun("t", STREAM, 3, 9, (AGENT,), None), receipts.TriggerRun("t", "", 1, 0, (), None)):
        with pytest.raises(ReceiptError, match=r"trigger\.entries"):
            receipts.verify(receipts.sign(_receipt(bad), key))


def test_the_store_commits_receipt_and_cursor_together_and_forgets_on_remove(tmp_path: Path) -> None:
    store = TriggerStore(tmp_path / "t")
    spec = _spec(state=AGENT)
    assert store.deploy(spec) == Cursor(state=AGENT)
    store.commit("t", b"r1", Cursor(seq=10, invocations=1))
    store.commit("t", b"r2", Cursor(seq=20, invocations=2))
    assert store.deploy(spec).seq == 20  # a redeploy keeps the cursor
    store.close()
    reopened = TriggerStore(tmp_path / "t")  # survives a restart
    assert reopened.cursor("t").seq == 20 and reopened.receipts("t", 0, 10) == [(1, b"r1"), (2, b"r2")]
    assert reopened.receipts("t", 1, 10) == [(2, b"r2")] and reopened.specs() == [spec]
    assert reopened.remove("t") and reopened.receipts("t", 0, 10) == [] and reopened.cursor("t") == Cursor()
    reopened.close()
