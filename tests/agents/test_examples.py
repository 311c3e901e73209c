"""The example agents, run in their real sandboxes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agents import receipt
from storage.files import cat
from storage.unixfs.exporter import list_directory
from tests.agents.harness import EXAMPLES, AgentHarness


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


def test_minilm_graph_reproduces_the_published_similarities() -> None:
    """Sentence-transformers' documentation gives these cosine scores for all-MiniLM-L6-v2."""
    import sys

    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    sys.path.insert(0, str(EXAMPLES / "doc-search"))
    try:
        import minilm_onnx
    finally:
        sys.path.pop(0)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(minilm_onnx.build().SerializeToString(), options)
    tokenizer = Tokenizer.from_file(str(minilm_onnx.model_dir() / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    pairs = [
        ("A man is eating food.", "A man is eating a piece of bread.", 0.7553),
        ("A man is riding a horse.", "A man is riding a white horse on an enclosed ground.", 0.7369),
        ("A monkey is playing drums.", "Someone in a gorilla costume is playing a set of drums.", 0.6433),
    ]
    encoded = tokenizer.encode_batch([s for pair in pairs for s in pair[:2]])
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
    vectors = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    for index, (_, _, expected) in enumerate(pairs):
        assert abs(float(vectors[2 * index] @ vectors[2 * index + 1]) - expected) < 0.002


def test_doc_search_finds_the_right_paragraphs_in_the_sandbox(harness: AgentHarness, tmp_path: Path) -> None:
    sample = EXAMPLES / "doc-search" / "sample"
    outcome = harness.run(
        EXAMPLES / "doc-search",
        inputs={"docs": harness.put(sample / "docs"), "queries": harness.put(sample / "queries")},
    )
    assert outcome.status == "ok", outcome.logs[-2000:]
    files = dict(list_directory(harness.store.get, outcome.result))  # type: ignore[arg-type]
    results = json.loads(b"".join(cat(harness.store, files["results.json"])))
    best = {r["query"]: r["matches"][0]["document"] for r in results}
    assert best == {
        "why is my pump shaking": "pumps.md",
        "how do I keep panels producing power": "solar.md",
        "what to do before repairing a machine": "safety.md",
    }
