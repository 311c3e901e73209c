"""sensor-anomaly: find anomalous windows in edge telemetry; send only the insights.

Reads every *.csv under $MYCEL_IN (a header row, a timestamp column, numeric channels),
scores fixed windows with an IsolationForest over robust per-window features, and writes
$MYCEL_OUT/anomalies.json (the anomalous windows, most anomalous first) and
$MYCEL_OUT/summary.json. Deterministic: a fixed seed, so the same data gives the same CID.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

WINDOW = 20
SEED = 0
CONTAMINATION = 0.05  # expected share of anomalous windows


def load(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path) as stream:
        header = stream.readline().strip().split(",")
    values = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return header, values


def features(channels: np.ndarray) -> np.ndarray:
    """Per window and channel: deviation from a robust baseline, local jumpiness, flatness, trend."""
    rows, count = channels.shape
    padded = np.pad(channels, ((150, 150), (0, 0)), mode="edge")  # no zero-padding artefacts at the ends
    baseline = np.array([np.convolve(padded[:, c], np.ones(301) / 301, mode="valid") for c in range(count)]).T
    residual = channels - baseline
    noise = np.median(np.abs(np.diff(channels, axis=0)), axis=0) + 1e-9
    out = []
    for start in range(0, rows - WINDOW + 1, WINDOW):
        window = channels[start : start + WINDOW]
        res = residual[start : start + WINDOW]
        steps = np.abs(np.diff(window, axis=0)) / noise
        flat = (np.abs(np.diff(window, axis=0)) < 1e-9).mean(axis=0) * 100  # a stuck sensor repeats itself
        trend = np.abs(np.polyfit(np.arange(WINDOW), res, 1)[0]) * WINDOW / noise
        out.append(np.stack([np.abs(res).mean(axis=0) / noise, steps.max(axis=0), flat, trend]))
    raw = np.array(out)  # windows x feature kind x channel
    median = np.median(raw, axis=0)
    spread = np.maximum(np.median(np.abs(raw - median), axis=0), 1.0)  # features are in noise units or %
    robust = (raw - median) / spread
    # a fault shows in one channel: keep, per feature kind, the most extreme channel
    return np.log1p(np.clip(robust, 0, None)).max(axis=2)


def main() -> None:
    inputs = Path(os.environ["MYCEL_IN"])
    out = Path(os.environ["MYCEL_OUT"])
    files = sorted(p for p in inputs.rglob("*.csv"))
    anomalies, total_rows, total_windows = [], 0, 0
    for path in files:
        header, values = load(path)
        channels = values[:, 1:]
        feats = features(channels)
        model = IsolationForest(n_estimators=200, contamination=CONTAMINATION, random_state=SEED).fit(feats)
        scores = -model.score_samples(feats)
        flagged = np.where(model.predict(feats) == -1)[0]
        for w in flagged:
            start = int(w * WINDOW)
            means = channels[start : start + WINDOW].mean(axis=0)
            anomalies.append(
                {
                    "file": str(path.relative_to(inputs)),
                    "start_row": start,
                    "end_row": start + WINDOW,
                    "start_timestamp": int(values[start, 0]),
                    "score": round(float(scores[w]), 4),
                    "channel_means": {h: round(float(v), 4) for h, v in zip(header[1:], means, strict=True)},
                }
            )
        total_rows += len(values)
        total_windows += len(feats)
    anomalies.sort(key=lambda a: -a["score"])
    (out / "anomalies.json").write_text(json.dumps(anomalies, indent=1))
    summary = {
        "files": len(files),
        "rows": total_rows,
        "windows": total_windows,
        "anomalous_windows": len(anomalies),
        "window_rows": WINDOW,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
