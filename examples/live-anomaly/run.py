"""The live-anomaly demo between two running nodes: a sensor stream appended at a steady rate on
the edge node, the detector triggered next to it (deployed from pipeline.toml), its alerts
stream replicated by the far node, and the alerter triggered there on the replica.

Used by ``mycel demo live`` and tests/test_examples_live.py; alone:
``python examples/live-anomaly/run.py EDGE_API EDGE_PEER FAR_API [--readings 2000 --rate 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parents[1]) not in sys.path:
    sys.path.insert(0, str(HERE.parents[1]))

from sdk import Client  # noqa: E402
from sdk.errors import NodeApiError  # noqa: E402
from sdk.streams import StreamReader  # noqa: E402
from sdk.triggers import deploy_pipeline, parse_pipeline  # noqa: E402
from storage.streamentry import Entry  # noqa: E402

SENSOR_KEY = b"live-anomaly-demo-sensor-key-32b"  # a fixed demo key: the example's stream id is stable
PAGE = 256  # entries per read (the node serves at most 256)
BATCH_MS = 50  # the sensor sends what it read every 50 ms


def anomalies(count: int) -> list[int]:
    """The reading indices where a spike is injected: every 97th after the warm-up."""
    return list(range(60, count, 97))


def reading(i: int, rng: random.Random, spikes: set[int]) -> dict[str, float]:
    """A slow wave with small noise (seeded: the same series every run); a spike of ~15 sigma at ``spikes``."""
    value = 20.0 + math.sin(i / 300.0) + rng.gauss(0.0, 0.2)
    if i in spikes:
        value += 3.0 if i % 2 else -3.0
    return {"i": i, "v": round(value, 4)}


@dataclass
class Outcome:
    """What the run showed: the alerts seen on the far node, and the bytes on each side."""

    injected: list[int]
    alerted: list[int] = field(default_factory=list)  # reading indices, in the order the alert log shows them
    raw_bytes: int = 0  # the sensor stream's signed entries, held on the edge
    left_edge_bytes: int = 0  # the alerts stream's signed entries, what the far node pulled
    readings: int = 0
    seconds: float = 0.0


async def _entries(reader: StreamReader, after: int) -> list[Entry]:
    """The next page of a stream, empty while the stream does not exist yet (the alert log opens
    with its first alert)."""
    try:
        return await reader.entries(after=after, limit=PAGE)
    except NodeApiError as exc:
        if exc.status != 404:
            raise
        return []


async def _stream_bytes(client: Client, stream: str) -> int:
    reader, after, total = client.stream_reader(stream), 0, 0
    while page := await reader.entries(after=after, limit=PAGE):
        total += sum(len(entry.raw) for entry in page)
        after = page[-1].seq
    return total


async def run_live(
    edge_api: str,
    edge_peer: str,
    far_api: str,
    readings: int = 2000,
    rate: float = 200.0,
    on_alert: Callable[[str], None] = print,
    timeout: float = 60.0,
) -> Outcome:
    """Deploy both stages, stream ``readings`` at ``rate``/s, and follow the far node's alert log
    until every injected anomaly has been alerted (or ``timeout``)."""
    injected = anomalies(readings)
    outcome = Outcome(injected)
    started = time.monotonic()
    async with Client(edge_api) as edge, Client(far_api) as far:
        await edge.deploy(HERE / "detector")
        await far.deploy(HERE / "alerter")
        sensors = edge.stream("sensors", SENSOR_KEY)
        await sensors.append(json.dumps({"i": -1, "v": 20.0}).encode())  # the stream exists before the stage
        text = (HERE / "pipeline.toml").read_text().replace("SENSORS", sensors.id)
        [detect] = await deploy_pipeline(edge, parse_pipeline(text))
        alerts = detect["output_stream"]
        deadline = time.monotonic() + timeout
        while (await far._call("POST", f"/v1/streams/{alerts}/subscribe", json={"peer": edge_peer}))["head_seq"] < 1:
            if time.monotonic() > deadline:  # the detector's first run opens the alerts stream
                raise TimeoutError(f"the edge's alerts stream {alerts} did not start within {timeout:.0f} s")
            await asyncio.sleep(0.1)
        deployed = await far.deploy_trigger("alert", "live-alerter", "stream", stream=alerts, output="alert-log")
        log = far.stream_reader(deployed["output_stream"])

        async def follow() -> None:
            after = 0
            while len(outcome.alerted) < len(injected):
                page = await _entries(log, after)
                for entry in page:
                    for line in (entry.payload or b"").decode().splitlines():
                        on_alert(line)
                        outcome.alerted.append(int(line.split()[2]))
                    after = entry.seq
                if not page:
                    await asyncio.sleep(0.05)

        async def feed() -> None:
            rng, spikes, per_batch = random.Random(14), set(injected), max(1, round(rate * BATCH_MS / 1000))
            tick = time.monotonic()
            for first in range(0, readings, per_batch):
                batch = [
                    json.dumps(reading(i, rng, spikes)).encode() for i in range(first, min(readings, first + per_batch))
                ]
                await sensors.append(*batch)
                tick += BATCH_MS / 1000
                await asyncio.sleep(max(0.0, tick - time.monotonic()))

        follower = asyncio.create_task(follow())
        await feed()
        outcome.readings = readings
        with contextlib.suppress(TimeoutError):  # a missed alert shows in the outcome, not as an error
            await asyncio.wait_for(follower, timeout)
        await asyncio.sleep(0.5)
        outcome.alerted = []  # read again from the start: a late duplicate would show now
        after = 0
        while page := await _entries(log, after):
            outcome.alerted += [int(line.split()[2]) for e in page for line in (e.payload or b"").decode().splitlines()]
            after = page[-1].seq
        outcome.raw_bytes = await _stream_bytes(edge, sensors.id)
        outcome.left_edge_bytes = await _stream_bytes(far, alerts)
    outcome.seconds = time.monotonic() - started
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edge_api")
    parser.add_argument("edge_peer")
    parser.add_argument("far_api")
    parser.add_argument("--readings", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    done = asyncio.run(run_live(args.edge_api, args.edge_peer, args.far_api, args.readings, args.rate))
    print(f"{len(done.alerted)} alerts for {len(done.injected)} injected; raw stream {done.raw_bytes:,} bytes, "
          f"{done.left_edge_bytes:,} left the edge")  # fmt: skip
    sys.exit(0 if sorted(done.alerted) == done.injected else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
