"""examples/live-anomaly end to end on two real node processes: the sensor stream is appended at
a steady rate on the edge node, the detector (deployed from the example's pipeline.toml) runs
next to it, the far node replicates the alerts stream over /mycel/stream/1.0.0 and its alerter
triggers there. Every injected anomaly is alerted on the far node exactly once, the clean
readings raise none, and what left the edge is a small fraction of the raw stream."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "live-anomaly" / "run.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("live_anomaly_run", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_injected_anomalies_are_alerted_once_each_on_the_far_node(cluster: Any) -> None:
    edge, far = cluster(2, timeout=30)
    example = _example()
    shown: list[str] = []
    outcome = asyncio.run(example.run_live(edge.api_url, edge.peer_id, far.api_url, readings=600, rate=300,
                                           on_alert=shown.append, timeout=20))  # fmt: skip
    assert outcome.injected == [60, 157, 254, 351, 448, 545]
    assert outcome.alerted == outcome.injected  # each once, in order, and nothing on the clean readings
    assert len(shown) == len(outcome.injected) and shown[0].startswith("ALERT reading 60 ")
    assert 0 < outcome.left_edge_bytes * 20 < outcome.raw_bytes, (outcome.left_edge_bytes, outcome.raw_bytes)


def test_the_detector_alerts_on_spikes_and_not_on_the_clean_series(tmp_path: Path) -> None:
    """The detector agent itself, run as the sandbox would (same files, same environment names)."""
    import json
    import os
    import random
    import subprocess

    example = _example()
    rng, spikes = random.Random(14), set(example.anomalies(3000))
    entries = [{"seq": i + 1, "text": json.dumps(example.reading(i, rng, spikes))} for i in range(3000)]
    entries.append({"seq": 3001, "text": "not a reading"})  # skipped, not a crash
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir(), out.mkdir()
    (inp / "batch").write_text(json.dumps({"entries": entries}))
    env = dict(os.environ, MYCEL_IN=str(inp), MYCEL_OUT=str(out))
    detector = EXAMPLE.parent / "detector" / "main.py"
    subprocess.run([sys.executable, str(detector)], env=env, check=True, timeout=30)
    assert [alert["i"] for alert in json.loads((out / "output").read_text())] == sorted(spikes)
    state = json.loads((out / "state").read_text())
    assert state["alerts"] == len(spikes) and state["n"] == 3000 - len(spikes)
    clean = [{"seq": 1, "text": json.dumps({"i": 5000 + i, "v": 20.0 + 0.01 * (i % 7)})} for i in range(200)]
    (inp / "batch").write_text(json.dumps({"entries": clean}))
    (inp / "state").write_text((out / "state").read_text())
    (out / "output").unlink()  # the first run always writes one (it opens the alerts stream)
    subprocess.run([sys.executable, str(detector)], env=env, check=True, timeout=30)
    assert not (out / "output").exists()  # a clean batch sends nothing


def test_demo_live_is_a_subcommand_of_demo(mycel: Any) -> None:
    listed = mycel("demo", "--help")
    assert listed.returncode == 0 and "live" in listed.stdout and "--keep" in listed.stdout, listed.stderr
    live = mycel("demo", "live", "--help")
    assert live.returncode == 0 and "--readings" in live.stdout and "--rate" in live.stdout, live.stderr
    refused = mycel("demo", "live", "--rate", "0")
    assert refused.returncode == 2 and "--rate" in refused.stderr  # refused before any node starts
