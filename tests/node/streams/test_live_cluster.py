"""Live replication between two real node processes over real libp2p: with the fallback poll an
hour long, each entry appended at A reaches B's replica within a second (A notices B, B pulls)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nacl.signing
import pytest

from sdk import Client


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
