"""Live replication between two real node processes over real libp2p: with the fallback poll an
hour long, each entry appended at A reaches B's replica within a second (A notices B, B pulls),
and a trigger on B over its replica of a trigger's output on A runs on each one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from sdk import Client
from tests.node.triggers.agents import COUNTER, write_agent


async def _until(condition: Any, timeout: float) -> float:
    """Seconds until ``condition()`` (a coroutine function) is true; fails past ``timeout``."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def test_each_entry_reaches_the_replica_within_a_second_with_no_poll(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYCEL_STREAMS_POLL_SECONDS", "3600")  # the node processes inherit it
    a, b = cluster(2, timeout=30)

    async def scenario() -> list[float]:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            writer = at_a.stream("live", nacl.signing.SigningKey(b"l" * 32))
            await writer.append(b"1")
            subscribed = await at_b._call("POST", f"/v1/streams/{writer.id}/subscribe", json={"peer": a.peer_id})
            assert subscribed["head_seq"] == 1
            lags = []
            for seq in range(2, 8):  # each append right after the last one arrived: a poll would take ~3600 s
                await writer.append(str(seq).encode())

                async def arrived(seq: int = seq) -> bool:
                    return bool((await at_b._call("GET", f"/v1/streams/{writer.id}"))["head_seq"] >= seq)

                lags.append(await _until(arrived, 1.0))
            entries = await at_b.stream_reader(writer.id).entries()
            assert [e.payload for e in entries] == [str(i).encode() for i in range(1, 8)]  # verified by the SDK
            return lags

    lags = asyncio.run(scenario())
    assert max(lags) < 1.0


def test_a_stage_on_b_runs_on_each_output_of_a_stage_on_a_within_seconds_with_no_poll(
    cluster: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The pipeline case: a counter on A writes its output stream there; B replicates that stream
    and a counter on B runs on its replica. Each entry appended at A goes through both."""
    monkeypatch.setenv("MYCEL_STREAMS_POLL_SECONDS", "3600")
    a, b = cluster(2, timeout=30)
    agent = write_agent(tmp_path / "counter", "counter", COUNTER)

    async def scenario() -> None:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            await at_a.deploy(agent)
            await at_b.deploy(agent)
            writer = at_a.stream("readings", nacl.signing.SigningKey(b"p" * 32))
            await writer.append(b"1")
            first = await at_a.deploy_trigger("count", "counter", "stream", stream=writer.id, output="counts")
            counts = first["output_stream"]

            async def output_exists() -> bool:
                try:
                    return bool((await at_a.stream_reader(counts).info())["head_seq"] >= 1)
                except Exception:  # 404 until the first run's output
                    return False

            await _until(output_exists, 60)
            await at_b._call("POST", f"/v1/streams/{counts}/subscribe", json={"peer": a.peer_id})
            await at_b.deploy_trigger("tally", "counter", "stream", stream=counts, output="tallies")

            async def tallied(seq: int) -> bool:
                return bool((await at_b.triggers.get("tally"))["cursor"]["seq"] >= seq)

            await _until(lambda: tallied(1), 60)  # B's first run, on what it pulled at subscribe
            for seq in range(2, 6):  # each right after the last went through: a poll would take an hour
                await writer.append(str(seq).encode())
                await _until(lambda seq=seq: tallied(seq), 1.5)  # two runs and a replication

    asyncio.run(scenario())
