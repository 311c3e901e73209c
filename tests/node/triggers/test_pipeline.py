"""A two-stage pipeline declared in one file and deployed with the real ``mycel pipeline deploy``
against the in-process API: the second stage triggers on the first stage's output stream, on the
node where that stream lives. Also: pipeline files that cannot work are refused before anything
is deployed."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agents.bundle import pack
from sdk.errors import UsageError
from sdk.triggers import parse_pipeline
from tests.node.streams.helpers import Writer
from tests.node.triggers.agents import COUNTER, write_agent

PIPELINE = """
[[stage]]
name = "tally"
agent = "counter"
input = "stage:pairs"
output = "tallies"

[[stage]]
name = "pairs"
agent = "counter"
input = "{stream}"
every_n = 2
output = "pair-counts"
"""


async def test_a_stage_triggers_on_the_output_of_the_stage_before(
    node: Any, client: TestClient[Any, Any], tmp_path: Path
) -> None:
    pack(write_agent(tmp_path / "counter", "counter", COUNTER), node.store)
    writer = Writer("feed")
    await node.streams.append(writer.stream, [writer.next(b"e1")])
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE.format(stream=writer.stream))
    env = dict(os.environ, MYCEL_DATA_DIR=str(tmp_path / "cli"))
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli.main", "pipeline", "deploy", str(path), "--api", str(client.make_url("")),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await cli.communicate()
    assert cli.returncode == 0, err.decode()
    pairs_output = node.triggers.output_stream("pairs")
    assert out.decode().splitlines() == [
        f"stage pairs: {writer.stream} -> {pairs_output}",
        f"stage tally: {pairs_output} -> {node.triggers.output_stream('tally')}",
    ]
    await node.streams.append(writer.stream, [writer.next(f"e{n}".encode()) for n in range(2, 7)])
    deadline = time.monotonic() + 30
    while len(tallies := await node.streams.since(node.triggers.output_stream("tally"), 0, 10)) < 3:
        assert time.monotonic() < deadline, node.triggers.describe("tally")
        await asyncio.sleep(0.02)
    assert [e.payload for e in tallies] == [b"1", b"2", b"3"]  # one per pair of input entries
    assert [e.payload for e in await node.streams.since(pairs_output, 0, 10)] == [b"2", b"4", b"6"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[stage]]\nname = 'a'\nagent = 'x'\ninput = 'stage:a'\noutput = 'o'\n", "missing or reads from them"),
        ("[[stage]]\nname = 'a'\nagent = 'x'\ninput = 'stage:b'\n", "missing"),
        (
            "[[stage]]\nname = 'a'\nagent = 'x'\ninput = 's'\n[[stage]]\nname = 'b'\nagent = 'x'\ninput = 'stage:a'\n",
            "sets no output stream",
        ),
        ("[[stage]]\nname = 'a'\nagent = 'x'\n", "required"),
        ("[[stage]]\nname = 'a'\nagent = 'x'\ninput = 's'\ncolour = 1\n", "keys are"),
        (
            "[[stage]]\nname = 'a'\nagent = 'x'\ninput = 's'\n[[stage]]\nname = 'a'\nagent = 'x'\ninput = 's'\n",
            "two stages",
        ),
        ("stage = 3", "1 to 32"),
        ("[[stage", "not valid TOML"),
    ],
)
def test_pipeline_files_that_cannot_work_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_pipeline(text)
