"""A stream trigger and an invoke trigger over the real stream service, executor and API, in process:
batches of N, receipts naming the seq ranges and CIDs, the state folded across invocations,
the output stream signed by the node's trigger key, and an invocation's round trip."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from agents import receipt as receipts
from agents.bundle import pack
from node.triggers.model import parse_request
from sdk.streams import verify_chain
from storage.cid import CID
from storage.files import cat
from storage.streamentry import verify_entry
from tests.node.streams.helpers import Writer
from tests.node.test_openapi import check
from tests.node.triggers.agents import COUNTER, ECHO, write_agent

JSON = {"Content-Type": "application/json"}


async def _until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_every_ten_entries_fold_into_one_state_with_receipts(
    node: Any, client: TestClient[Any, Any], tmp_path: Path
) -> None:
    bundle = pack(write_agent(tmp_path / "counter", "counter", COUNTER), node.store)
    writer = Writer()
    raws = [writer.next(f"reading {i}".encode()) for i in range(1, 51)]
    await node.streams.append(writer.stream, raws[:1])  # the stream must be held here to trigger on it
    body = {"name": "count", "agent": "counter", "kind": "stream", "stream": writer.stream, "every_n": 10,
            "output": "counts"}  # fmt: skip
    response = await client.post("/v1/triggers", json=body)
    deployed = await check(response, "/v1/triggers", "POST")
    assert response.status == 201 and deployed["agent"] == str(bundle.agent_id) and deployed["cursor"]["seq"] == 0
    await node.streams.append(writer.stream, raws[1:])

    async def done() -> bool:  # the last output is appended just after its receipt is committed
        outputs = await node.streams.since(node.triggers.output_stream("count"), 0, 10)
        return bool(node.triggers.describe("count")["cursor"]["seq"] == 50 and len(outputs) == 5)

    await _until(done)
    response = await client.get("/v1/triggers/count/receipts")
    listed = (await check(response, "/v1/triggers/{name}/receipts"))["receipts"]
    assert [(r["first_seq"], r["last_seq"]) for r in listed] == [(1 + 10 * i, 10 * (i + 1)) for i in range(5)]
    cids = [verify_entry(raw).cid for raw in raws]
    for item in listed:
        record = receipts.verify(base64.b64decode(item["data"]))  # signed by the node, offline-checkable
        assert record.status == "ok" and record.trigger is not None and record.agent == bundle.agent_id
        assert list(record.trigger.entries) == cids[record.trigger.first_seq - 1 : record.trigger.last_seq]
    final = receipts.verify(base64.b64decode(listed[-1]["data"])).trigger
    assert final is not None and final.state is not None
    state = json.loads(b"".join(cat(node.store, final.state)))
    assert state == {"count": 50, "last": 50, "gaps": 0, "repeats": 0}
    info = await check(await client.get("/v1/triggers/count"), "/v1/triggers/{name}")
    assert info["cursor"]["state"] == str(final.state) and info["cursor"]["invocations"] == 5
    # the output stream: one entry per invocation, written by the trigger's key (not the user's)
    output = info["output_stream"]
    entries = verify_chain(output, [entry.raw for entry in await node.streams.since(output, 0, 100)])
    assert [e.payload for e in entries] == [b"10", b"20", b"30", b"40", b"50"]
    assert entries[0].writer != writer.peer
    listing = await check(await client.get("/v1/triggers"), "/v1/triggers")
    assert [t["name"] for t in listing["triggers"]] == ["count"]
    removed = await client.delete("/v1/triggers/count")
    assert (await check(removed, "/v1/triggers/{name}", "DELETE")) == {"removed": "count"}
    gone = await client.get("/v1/triggers/count")
    assert gone.status == 404 and (await check(gone, "/v1/triggers/{name}"))["error"] == "not_found"


async def test_invoke_answers_with_the_output_from_a_warm_sandbox(
    node: Any, client: TestClient[Any, Any], tmp_path: Path
) -> None:
    pack(write_agent(tmp_path / "echo", "echo", ECHO), node.store)
    response = await client.post("/v1/triggers", json={"name": "echo", "agent": "echo", "kind": "invoke"})
    assert response.status == 201, await response.text()
    times = []
    for n in range(1, 4):
        started = time.perf_counter()
        response = await client.post("/v1/agents/echo/invoke", json={"input": "hello"})
        answer = await check(response, "/v1/agents/{name}/invoke", "POST")
        times.append((time.perf_counter() - started) * 1000)
        assert response.status == 200 and answer["text"] == f"HELLO #{n}", answer
        record = receipts.verify(base64.b64decode(answer["receipt"]))
        assert record.trigger is not None and record.trigger.state is not None and record.trigger.entries == ()
    print(f"invoke round trip (in-process API, warm python): {', '.join(f'{t:.1f}' for t in times)} ms")
    refused = [
        (await client.post("/v1/agents/nobody/invoke", json={}), 404, "not_found"),
        (await client.post("/v1/agents/echo/invoke", json={"input": 3}), 400, "bad_request"),
        (await client.post("/v1/agents/echo/invoke", json={"data": "***"}), 400, "bad_data"),
        (await client.post("/v1/triggers", json={"name": "x", "agent": "echo", "kind": "cron"}), 400, "bad_kind"),
        (await client.post("/v1/triggers", json={"name": "x", "agent": "nope", "kind": "invoke"}), 404, "no_agent"),
        (
            await client.post(
                "/v1/triggers", json={"name": "x", "agent": "echo", "kind": "stream", "stream": "st" + "a" * 52}
            ),
            409,
            "stream_not_here",
        ),
        (
            await client.post(
                "/v1/triggers", json={"name": "x", "agent": "echo", "kind": "schedule", "schedule": "61 * * * *"}
            ),
            400,
            "bad_schedule",
        ),
    ]
    for response, status, error in refused:
        body = await response.json()
        assert (response.status, body["error"]) == (status, error), body


async def test_a_schedule_trigger_runs_on_its_period_and_folds_its_state(node: Any, tmp_path: Path) -> None:
    ticker = 'import os\np = os.path.join(os.environ["MYCEL_IN"], "state")\nn = int(open(p).read()) if os.path.exists(p) else 0\nopen(os.path.join(os.environ["MYCEL_OUT"], "state"), "w").write(str(n + 1))\n'  # noqa: E501
    bundle = pack(write_agent(tmp_path / "ticker", "ticker", ticker), node.store)
    spec = parse_request({"name": "tick", "kind": "schedule", "schedule": "every 100ms"}, bundle.agent_id)
    await node.triggers.deploy(spec)

    async def ticked() -> bool:
        return bool(node.triggers.describe("tick")["cursor"]["invocations"] >= 3)

    await _until(ticked)
    cursor = node.triggers.describe("tick")["cursor"]
    assert b"".join(cat(node.store, CID.parse(cursor["state"]))) == str(cursor["invocations"]).encode()
    await node.triggers.remove("tick")
    state = node.triggers.store.cursor("tick")  # removed: forgotten
    assert state.invocations == 0


async def test_calls_past_the_waiting_bound_are_refused_busy(
    node: Any, client: TestClient[Any, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    from node.triggers import service

    monkeypatch.setattr(service, "MAX_WAITING_CALLS", 1)
    pack(write_agent(tmp_path / "echo", "echo", ECHO), node.store)
    assert (await client.post("/v1/triggers", json={"name": "echo", "agent": "echo", "kind": "invoke"})).status == 201
    first, second = await asyncio.gather(
        client.post("/v1/agents/echo/invoke", json={"input": "a"}),
        client.post("/v1/agents/echo/invoke", json={"input": "b"}),
    )
    statuses = sorted([first.status, second.status])
    busy = first if first.status == 503 else second
    assert statuses == [200, 503] and (await check(busy, "/v1/agents/{name}/invoke", "POST"))["error"] == "busy"


FAILING = "raise SystemExit(3)\n"


async def test_a_crash_between_commit_and_output_append_is_repaired_at_start(
    node: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from node.streams.service import StreamService
    from node.triggers.service import TriggerService

    counter = pack(write_agent(tmp_path / "counter", "counter", COUNTER), node.store)
    bundle = pack(write_agent(tmp_path / "failing", "failing", FAILING), node.store)
    writer = Writer()
    await node.streams.append(writer.stream, [writer.next(b"one")])
    appended: list[Any] = []

    def lost(self: Any, raws: Any) -> None:  # the node dies right after the commit
        appended.extend(raws)

    monkeypatch.setattr(StreamService, "append_own", lost)
    body = {"name": "c", "agent": "x", "kind": "stream", "stream": writer.stream, "output": "o"}
    spec = parse_request(body, counter.agent_id)
    await node.triggers.deploy(spec)

    async def committed() -> bool:
        return bool(appended)

    await _until(committed)
    await node.triggers.stop()
    monkeypatch.undo()
    output = node.triggers.output_stream("c")
    assert await asyncio.to_thread(node.streams.store.info, output) is None  # the output was lost ...
    restarted = TriggerService(node.triggers.store, node.streams, node.store, node.executor, node.metrics)
    await restarted.start()  # ... and the commit kept it: appended at start
    assert [e.payload for e in await node.streams.since(output, 0, 10)] == [b"1"]
    # an agent that fails consumes its entries all the same: a failed receipt, the state unchanged
    failing = parse_request({"name": "f", "agent": "x", "kind": "stream", "stream": writer.stream}, bundle.agent_id)
    await restarted.deploy(failing)

    async def failed() -> bool:
        return bool(restarted.describe("f")["cursor"]["failures"] == 1)

    await _until(failed)
    [(_, raw)] = await restarted.receipts("f", 0, 10)
    record = receipts.verify(raw)
    assert record.status.startswith("failed") and record.trigger is not None and record.trigger.last_seq == 1
    assert restarted.describe("f")["cursor"]["seq"] == 1 and record.trigger.state is None
    await restarted.stop()


BIG = 'import os\nopen(os.path.join(os.environ["MYCEL_OUT"], "output"), "w").write("x" * 20000)\n'


async def test_an_output_over_the_inline_bound_goes_by_cid_and_stays_pinned(node: Any, tmp_path: Path) -> None:
    bundle = pack(write_agent(tmp_path / "big", "big", BIG), node.store)
    writer = Writer()
    await node.streams.append(writer.stream, [writer.next(b"one")])
    body = {"name": "big", "agent": "x", "kind": "stream", "stream": writer.stream, "output": "big-out"}
    await node.triggers.deploy(parse_request(body, bundle.agent_id))
    await node.streams.append(writer.stream, [writer.next(b"two")])  # a second result: the first is unpinned
    output = node.triggers.output_stream("big")

    async def two() -> bool:
        return len(await node.streams.since(output, 0, 10)) == 2

    await _until(two)
    first = (await node.streams.since(output, 0, 1))[0]
    assert first.payload is None and first.payload_cid is not None
    assert node.store.is_pinned(first.payload_cid)
    assert b"".join(cat(node.store, first.payload_cid)) == b"x" * 20000
