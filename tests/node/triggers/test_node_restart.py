"""One real node process: a stream trigger every 10 entries over 50 entries, with the node killed
(SIGKILL) while a batch is in its sandbox and started again. The committed receipts name 1-10 ..
41-50, each entry exactly once; the state the agent folded counts 50 with no gap and no repeat;
the output stream holds one entry per committed batch, signed by the node's trigger key."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing

from node.cluster import http_json, start_node_process, stop_process, wait_answering
from sdk import Client
from tests.node.triggers.agents import COUNTER, ECHO, write_agent
from tests.support import CliRunner

# the second batch stays in its sandbox long enough for the node to be killed under it
PAUSE = "if batch['first_seq'] == 11:\n    __import__('time').sleep(1.5)\n"
SLOW_COUNTER = COUNTER.replace("for entry in", PAUSE + "for entry in")


def _wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _cursor(api: str) -> dict[str, Any]:
    cursor: dict[str, Any] = http_json(f"{api}/v1/triggers/count")["cursor"]
    return cursor


def test_a_killed_node_resumes_without_a_repeat_or_a_gap(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    [node] = cluster(1, timeout=30)
    key = nacl.signing.SigningKey(b"s" * 32)
    agent_dir = write_agent(tmp_path / "counter", "counter", SLOW_COUNTER)

    async def setup() -> str:
        async with Client(node.api_url) as client:
            await client.deploy(agent_dir)
            await client.deploy(write_agent(tmp_path / "echo", "echo", ECHO))
            stream = client.stream("readings", key)
            await stream.append(*[f"r{i}".encode() for i in range(1, 21)])
            await client.deploy_trigger("count", "counter", "stream", stream=stream.id, every_n=10, output="counts")
            return stream.id

    stream_id = asyncio.run(setup())
    _wait(lambda: _cursor(node.api_url)["seq"] >= 10)  # batch 11-20 is in its sandbox now, for 1.5 s
    killed = time.time()
    stop_process(node.pid, timeout=0)  # SIGTERM then at once SIGKILL
    proc = start_node_process(Path(node.data_dir), node.listen, node.api, [], node.region)
    try:
        wait_answering(proc, node.api_url, Path(node.data_dir) / "node.log")

        async def finish() -> tuple[list[Any], dict[str, Any], list[Any]]:
            async with Client(node.api_url) as client:
                await client.stream("readings", key).append(*[f"r{i}".encode() for i in range(21, 51)])
                started = time.monotonic()
                while (await client.triggers.get("count"))["cursor"]["seq"] < 50:
                    assert time.monotonic() - started < 60, "the trigger did not catch up"
                    await asyncio.sleep(0.05)
                info = await client.triggers.get("count")
                found = await client.triggers.receipts("count")
                reader = client.stream_reader(info["output_stream"])
                while len(outputs := await reader.entries()) < 5:  # appended just after the last commit
                    assert time.monotonic() - started < 60, outputs
                    await asyncio.sleep(0.05)
                return found, info, outputs

        found, info, outputs = asyncio.run(finish())
        assert [(r.run.first_seq, r.run.last_seq) for r in found] == [(1 + 10 * i, 10 * (i + 1)) for i in range(5)]
        assert all(r.receipt.status == "ok" and r.run.stream == stream_id for r in found)
        assert found[0].receipt.ended_at < killed < found[1].receipt.started_at  # the batch killed mid-run ran again
        entries = http_json(f"{node.api_url}/v1/streams/{stream_id}/entries?after=0&limit=100")["entries"]
        assert [str(c) for r in found for c in r.run.entries] == [e["cid"] for e in entries]  # each once, in order
        state_cid = info["cursor"]["state"]
        assert state_cid == str(found[-1].run.state)
        with urllib.request.urlopen(f"{node.api_url}/v1/blobs/{state_cid}") as response:
            state = json.loads(response.read())
        assert state == {"count": 50, "last": 50, "gaps": 0, "repeats": 0}
        assert [e.payload for e in outputs] == [b"10", b"20", b"30", b"40", b"50"]
        assert outputs[0].writer != found[0].receipt.node  # the trigger's key, not the node's identity key

        # the CLI over the same node: an invoke trigger, its round trip timed, the listing
        api = ("--api", node.api_url)
        deployed = mycel("trigger", "deploy", "echo", "echo", "--invoke", *api)
        assert deployed.returncode == 0 and deployed.stdout.startswith("trigger echo (invoke) runs "), deployed.stderr

        async def invoke_five() -> list[float]:
            async with Client(node.api_url) as client:
                answers = [await client.invoke("echo", "hi") for _ in range(5)]
            assert [a.output for a in answers] == [f"HI #{n}".encode() for n in range(1, 6)]
            return [a.milliseconds for a in answers]

        node_ms = asyncio.run(invoke_five())
        started = time.perf_counter()
        invoked = mycel("agent", "invoke", "echo", "hello", *api)
        cli_ms = (time.perf_counter() - started) * 1000
        assert invoked.returncode == 0 and invoked.stdout == "HELLO #6", invoked.stderr
        print(f"invoke on a real node: node-side {', '.join(f'{ms:.0f}' for ms in node_ms)} ms; "
              f"CLI process round trip {cli_ms:.0f} ms")  # fmt: skip
        listed = mycel("trigger", "ls", *api)
        assert listed.returncode == 0 and "count  stream " in listed.stdout and "seq 50  5 invocations" in listed.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
