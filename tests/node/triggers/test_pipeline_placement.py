"""Pipeline stages placed by their input's location, over two real node processes: the CLI talks
to A; stage ``local`` reads a stream A holds and runs on A; stage ``remote`` reads a stream whose
origin is B (A knows it from B's announcement) and runs on B, which fetches the agent from A;
stage ``after`` reads ``remote``'s output and runs on B with it. Entries appended on B flow through
both of B's stages there."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing

from node.cluster import http_json
from sdk import Client
from storage.streamentry import verify_entry
from tests.node.triggers.agents import COUNTER, write_agent

PIPELINE = """
[[stage]]
name = "local"
agent = "counter"
input = "{on_a}"
output = "local-counts"

[[stage]]
name = "remote"
agent = "counter"
input = "{on_b}"
every_n = 2
output = "pair-counts"

[[stage]]
name = "after"
agent = "counter"
input = "stage:remote"
output = "tallies"
"""


def _wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_each_stage_runs_where_its_input_stream_is(cluster: Any, tmp_path: Path) -> None:
    a, b = cluster(2, timeout=30)
    agent_dir = write_agent(tmp_path / "counter", "counter", COUNTER)

    async def setup() -> tuple[str, str]:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            await at_a.deploy(agent_dir)  # only A holds the agent
            on_a = at_a.stream("here", nacl.signing.SigningKey(b"a" * 32))
            on_b = at_b.stream("there", nacl.signing.SigningKey(b"b" * 32))
            await on_a.append(b"a1")
            await on_b.append(b"b1")
            return on_a.id, on_b.id

    on_a, on_b = asyncio.run(setup())
    # A learns where B's stream is from B's signed announcement
    _wait(lambda: any(h["peer"] == b.peer_id for h in http_json(f"{a.api_url}/v1/streams/{on_b}/holders")["holders"]))
    assert http_json(f"{a.api_url}/v1/streams/{on_a}/holders")["here"] is True
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE.format(on_a=on_a, on_b=on_b))
    env = dict(os.environ, MYCEL_DATA_DIR=str(tmp_path / "cli"))
    cli = subprocess.run([sys.executable, "-m", "node.cli.main", "pipeline", "deploy", str(path), "--api", a.api_url],
                         capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    on_a_triggers = {t["name"]: t for t in http_json(f"{a.api_url}/v1/triggers")["triggers"]}
    on_b_triggers = {t["name"]: t for t in http_json(f"{b.api_url}/v1/triggers")["triggers"]}
    assert set(on_a_triggers) == {"local"} and set(on_b_triggers) == {"remote", "after"}
    assert on_b_triggers["remote"]["deployed_by"] == a.peer_id and on_b_triggers["remote"]["stream"] == on_b
    assert on_b_triggers["after"]["stream"] == on_b_triggers["remote"]["output_stream"]
    lines = cli.stdout.splitlines()
    assert lines[0] == f"stage local: {on_a} -> {on_a_triggers['local']['output_stream']}"
    assert lines[1].endswith(f"(on {b.peer_id})") and lines[2].endswith(f"(on {b.peer_id})")

    async def more() -> None:
        async with Client(b.api_url) as at_b:
            await at_b.stream("there", nacl.signing.SigningKey(b"b" * 32)).append(b"b2", b"b3", b"b4")

    asyncio.run(more())
    tallies = f"{b.api_url}/v1/streams/{on_b_triggers['after']['output_stream']}/entries?after=0"

    def tallied() -> list[bytes | None]:
        try:
            entries = http_json(tallies)["entries"]
        except OSError:  # 404 until the first output
            return []
        return [verify_entry(base64.b64decode(entry["data"])).payload for entry in entries]

    _wait(lambda: len(tallied()) == 2)  # one tally per pair of B's entries, all on B
    assert tallied() == [b"1", b"2"]
