"""The edge detector: folds each batch of readings into an EWMA mean and variance (its state) and
writes only the readings whose z-score passes the threshold, so only alerts leave the edge.

A reading is ``{"i": index, "v": value}``. An anomalous reading is alerted and kept out of the
model (folding it in would widen the variance and hide the next one). The first WARMUP readings
only train the model.
"""

import json
import os

ALPHA = 0.05  # EWMA weight of a new reading
THRESHOLD = 6.0  # |z| above this is an anomaly
WARMUP = 30

inp, out = os.environ["MYCEL_IN"], os.environ["MYCEL_OUT"]
state = {"n": 0, "mean": 0.0, "var": 0.0, "alerts": 0}
first = not os.path.exists(os.path.join(inp, "state"))
if not first:
    with open(os.path.join(inp, "state")) as f:
        state = json.load(f)
with open(os.path.join(inp, "batch")) as f:
    batch = json.load(f)

alerts = []
for entry in batch["entries"]:
    try:
        reading = json.loads(entry.get("text", ""))
        value = float(reading["v"])
    except (ValueError, KeyError, TypeError):
        continue  # not a reading: skipped, the model unchanged
    n, mean, var = state["n"], state["mean"], state["var"]
    if n == 0:
        state.update(n=1, mean=value, var=0.0)
        continue
    z = (value - mean) / (var**0.5) if var > 0 else 0.0
    if n >= WARMUP and abs(z) > THRESHOLD:
        alerts.append({"i": reading.get("i"), "seq": entry["seq"], "v": round(value, 3), "z": round(z, 1)})
        continue
    delta = value - mean
    mean += ALPHA * delta
    var = (1 - ALPHA) * (var + ALPHA * delta * delta)
    state.update(n=n + 1, mean=mean, var=var)

state["alerts"] += len(alerts)
with open(os.path.join(out, "state"), "w") as f:
    json.dump(state, f)
if alerts or first:  # no output file: no entry in the alerts stream for a clean batch
    # (the first invocation writes one, even empty, so the alerts stream exists for the far node to follow)
    with open(os.path.join(out, "output"), "w") as f:
        json.dump(alerts, f, separators=(",", ":"))
