"""Synthetic edge-sensor telemetry with injected faults, and the ground truth.

Usage: python generate_telemetry.py OUT_DIR [--rows 10000] [--faults 10] [--seed 7]
Writes OUT_DIR/telemetry.csv (timestamp, temperature_c, vibration_g, current_a) and
OUT_DIR/faults.json (the rows of each injected fault, kept apart from the agent's input).
Fault kinds: spike bursts, a stuck sensor, and a drifting offset.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path


def generate(rows: int, faults: int, seed: int) -> tuple[list[list[float]], list[dict[str, object]]]:
    rng = random.Random(seed)
    data = []
    for i in range(rows):
        daily = math.sin(2 * math.pi * i / 1440)
        data.append(
            [20 + 2 * daily + rng.gauss(0, 0.15), 0.1 + rng.gauss(0, 0.01), 3 + 0.2 * daily + rng.gauss(0, 0.03)]
        )
    slots = rng.sample(range(2, rows // 100 - 2), faults)  # fault positions, 100 rows apart at least
    truth = []
    for n, slot in enumerate(sorted(slots)):
        start, length, kind = slot * 100 + rng.randrange(20), 30, ("spike", "stuck", "drift")[n % 3]
        channel = rng.randrange(3)
        for i in range(start, start + length):
            if kind == "spike":
                data[i][channel] += rng.choice((-1, 1)) * rng.uniform(6, 10) * (0.15, 0.01, 0.03)[channel]
            elif kind == "stuck":
                data[i][channel] = data[start][channel]
            else:
                data[i][channel] += (i - start + 10) * 0.6 * (0.15, 0.01, 0.03)[channel]
        truth.append({"kind": kind, "channel": channel, "start_row": start, "end_row": start + length})
    return data, truth


def write_csv(out_dir: Path, rows: int = 10000, faults: int = 10, seed: int = 7) -> list[dict[str, object]]:
    """Write out_dir/telemetry.csv; returns the injected faults (kept apart from the agent's input)."""
    data, truth = generate(rows, faults, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "telemetry.csv", "w") as out:
        out.write("timestamp,temperature_c,vibration_g,current_a\n")
        for i, (t, v, c) in enumerate(data):
            out.write(f"{1_700_000_000 + 60 * i},{t:.4f},{v:.5f},{c:.4f}\n")
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--faults", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    opts = parser.parse_args()
    truth = write_csv(opts.out, opts.rows, opts.faults, opts.seed)
    (opts.out / "faults.json").write_text(json.dumps(truth, indent=1))
    print(f"wrote {opts.rows} rows with {opts.faults} faults to {opts.out}")


if __name__ == "__main__":
    main()
