"""Fencing, in process over the real stores and executor: a trigger with a follower publishes an
output only once the follower acknowledged its receipt, runs one invocation past the last
acknowledgement at most, and a fence from its follower (and from no other peer) stops it for good,
voiding the invocation the follower never held. The fence message's bounds are checked too."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from agents.bundle import pack
from node.triggers.fence import Verdict, verdict
from node.triggers.model import Cursor, TriggerError, parse_request
from node.triggers.protocol import (
    Fence,
    Progress,
    TriggerProtocolError,
    encode_fenced,
    parse_fenced,
    parse_receipts,
)
from node.triggers.protocol import parse_request as parse_message
from storage import dagcbor
from storage.cid import CID
from storage.peerid import peer_id_for
from tests.node.streams.helpers import Writer
from tests.node.triggers.agents import COUNTER, write_agent

FOLLOWER = peer_id_for(bytes(nacl.signing.SigningKey(b"F" * 32).verify_key))
STRANGER = peer_id_for(bytes(nacl.signing.SigningKey(b"S" * 32).verify_key))


async def _until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_the_verdict_waits_for_the_acknowledgement_and_voids_what_the_fence_cut() -> None:
    assert verdict(Cursor(invocations=0), 0) is Verdict.PUBLISH  # nothing committed yet
    assert verdict(Cursor(invocations=3), 2) is Verdict.WAIT
    assert verdict(Cursor(invocations=3), 3) is Verdict.PUBLISH
    assert verdict(Cursor(invocations=3, fenced=True, fenced_at=3), 0) is Verdict.PUBLISH_AND_STOP
    assert verdict(Cursor(invocations=3, fenced=True, fenced_at=2), 3) is Verdict.VOID


def test_a_follower_is_a_peer_id_of_a_stream_trigger_without_a_standby() -> None:
    agent, stream = CID.for_block(b"agent"), "st" + "b" * 52
    body = {"name": "t", "agent": "a", "kind": "stream", "stream": stream, "follower": FOLLOWER}
    assert parse_request(body, agent).follower == FOLLOWER
    for bad in ({"follower": "nope"}, {"follower": FOLLOWER, "standby": STRANGER}, {"follower": 5}):
        with pytest.raises(TriggerError) as refused:
            parse_request(body | bad, agent)
        assert refused.value.code == "bad_follower"
    with pytest.raises(TriggerError):
        parse_request({"name": "t", "agent": "a", "kind": "invoke", "follower": FOLLOWER}, agent)


@pytest.mark.parametrize(
    "raw",
    [
        dagcbor.encode({"op": "fence", "trigger": "t"}),
        dagcbor.encode({"op": "fence", "trigger": "t", "at": -1}),
        dagcbor.encode({"op": "fence", "trigger": "t", "at": False}),
        dagcbor.encode({"op": "fence", "trigger": "t", "after": 1}),
        dagcbor.encode({"op": "elect", "trigger": "t", "at": 1}),
        dagcbor.encode({"op": "fence", "trigger": "t", "at": 1, "extra": 0}),
    ],
)
def test_malformed_fence_requests_are_refused(raw: bytes) -> None:
    with pytest.raises(TriggerProtocolError):
        parse_message(raw)


def test_fence_messages_round_trip_and_bad_replies_are_refused() -> None:
    assert parse_message(Fence("t", 4).encode()) == Fence("t", 4)
    assert parse_message(Progress("t", 4).encode()) == Progress("t", 4)
    assert parse_fenced(encode_fenced(True)) is True and parse_fenced(encode_fenced(False)) is False
    for frames in ([], [b"\xff"], [dagcbor.encode({"op": "fence", "fenced": 1})], encode_fenced(True) * 2):
        with pytest.raises(TriggerProtocolError):
            parse_fenced(frames)


async def test_outputs_wait_for_the_follower_and_its_fence_stops_the_trigger(node: Any, tmp_path: Path) -> None:
    bundle = pack(write_agent(tmp_path / "counter", "counter", COUNTER), node.store)
    writer = Writer()
    await node.streams.append(writer.stream, [writer.next(f"r{i}".encode()) for i in range(1, 31)])
    body = {"name": "count", "agent": "counter", "kind": "stream", "stream": writer.stream, "every_n": 10,
            "output": "counts", "follower": FOLLOWER}  # fmt: skip
    triggers = node.triggers
    await triggers.deploy(parse_request(body, bundle.agent_id))
    output = triggers.output_stream("count")

    async def published() -> list[bytes]:
        return [entry.payload for entry in await node.streams.since(output, 0, 10)]

    async def invocations(n: int) -> bool:
        return bool(triggers.describe("count")["cursor"]["invocations"] == n)

    await _until(lambda: invocations(1))
    await asyncio.sleep(0.3)  # the one negative check: nothing runs or appears without the follower
    assert await published() == [] and triggers.describe("count")["cursor"]["invocations"] == 1
    # a stranger's acknowledgement or fence counts for nothing
    await triggers.handle_progress(STRANGER, Progress("count", 1).encode())
    assert parse_fenced(await triggers.handle_progress(STRANGER, Fence("count", 0).encode())) is False
    # the follower's progress request serves the receipt; the next one acknowledges it
    served = parse_receipts(await triggers.handle_progress(FOLLOWER, Progress("count", 0).encode()))
    assert len(served) == 1 and await published() == []
    await triggers.handle_progress(FOLLOWER, Progress("count", 1).encode())

    async def first_out() -> bool:
        return await published() == [b"10"] and await invocations(2)

    await _until(first_out)
    # the follower took over after invocation 1 (it never held the 2nd): the 2nd is void here
    assert parse_fenced(await triggers.handle_progress(FOLLOWER, Fence("count", 1).encode())) is True

    async def stopped() -> bool:
        return not triggers.describe("count")["running"]

    await _until(stopped)
    view = triggers.describe("count")
    assert view["active"] is False and view["cursor"]["invocations"] == 2 and view["cursor"]["seq"] == 20
    assert view["cursor"]["fenced"] == {"by": FOLLOWER, "after_invocation": 1, "void": 1}
    assert await published() == [b"10"]  # the void invocation's output never appears
    assert [n for n, _ in await triggers.receipts("count", 0, 10)] == [1]  # its receipt is not served
    assert parse_receipts(await triggers.handle_progress(FOLLOWER, Progress("count", 1).encode())) == []
    assert parse_fenced(await triggers.handle_progress(FOLLOWER, Fence("count", 1).encode())) is True  # idempotent
