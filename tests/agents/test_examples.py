"""The example agents, run in their real sandboxes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLES, AgentHarness

from agents import receipt
from storage.files import cat
from storage.unixfs.exporter import list_directory


def test_sensor_anomaly_finds_the_injected_faults(harness: AgentHarness, tmp_path: Path) -> None:
    generator = EXAMPLES / "sensor-anomaly" / "generate_telemetry.py"
    subprocess.run([sys.executable, str(generator), str(tmp_path / "gen"), "--seed", "11"], check=True)
    (tmp_path / "edge").mkdir()
    (tmp_path / "gen" / "telemetry.csv").rename(tmp_path / "edge" / "telemetry.csv")
    telemetry = harness.put(tmp_path / "edge")
    outcome = harness.run(EXAMPLES / "sensor-anomaly", inputs={"telemetry": telemetry})
    assert outcome.status == "ok", outcome.logs[-2000:]
    files = dict(list_directory(harness.store.get, outcome.result))  # type: ignore[arg-type]
    anomalies = json.loads(b"".join(cat(harness.store, files["anomalies.json"])))
    summary = json.loads(b"".join(cat(harness.store, files["summary.json"])))
    faults = json.loads((tmp_path / "gen" / "faults.json").read_text())

    def overlaps(a: dict[str, int], f: dict[str, int]) -> bool:
        return a["start_row"] < f["end_row"] and a["end_row"] > f["start_row"]

    found = [f for f in faults if any(overlaps(a, f) for a in anomalies)]
    false_alarms = [a for a in anomalies if not any(overlaps(a, f) for f in faults)]
    assert len(found) == len(faults) == 10
    assert len(false_alarms) <= 5
    assert summary["rows"] == 10000 and summary["anomalous_windows"] == len(anomalies)
    checked = receipt.verify(outcome.receipt)
    assert checked.usage.bytes_out < checked.usage.bytes_in / 10  # insights, not the data
    again = harness.run(EXAMPLES / "sensor-anomaly", inputs={"telemetry": telemetry})
    assert again.result == outcome.result  # fixed seed: same data, same result CID
