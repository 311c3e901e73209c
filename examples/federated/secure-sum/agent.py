"""federated-secure-sum: FedAvg's aggregator, which sees only the sum of the sites' updates.

Inputs: ``$MYCEL_IN/<site>/update.bin`` (each site's masked update, from its run) and
``$MYCEL_IN/round/round.json`` (the roster). The masks cancel only when every site of the
roster is summed, so a missing or extra site is refused with the reason (exit 1): a sum over
part of the roster would be noise, and would be a different set than the client asked for.
Writes ``$MYCEL_OUT/sum.npy`` (the plain sum: the last entry is the total sample count) and
``mean.npy`` (sum / count: the new global model, or the feature means in ``stats`` mode).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

FRACTION_BITS = 20  # as the sites encode (secagg.py)

inputs, out = Path(os.environ["MYCEL_IN"]), Path(os.environ["MYCEL_OUT"])
spec = json.loads((inputs / "round" / "round.json").read_text())
present = {path.name for path in inputs.iterdir() if path.name != "round"}
roster = set(spec["roster"])
if present != roster:
    missing, extra = sorted(roster - present), sorted(present - roster)
    print(f"refusing to sum: missing {missing}, not in the roster {extra}; the masks would not cancel")
    sys.exit(1)
total = np.zeros(0, dtype=np.uint64)
for site in sorted(present):
    vector = np.frombuffer((inputs / site / "update.bin").read_bytes(), dtype="<u8").astype(np.uint64)
    total = vector if total.size == 0 else total + vector
plain = total.view(np.int64).astype(np.float64) / (1 << FRACTION_BITS)
np.save(out / "sum.npy", plain)
np.save(out / "mean.npy", plain[:-1] / plain[-1])
(out / "summary.json").write_text(json.dumps({"round": spec["round"], "sites": sorted(present), "n": plain[-1]}))
