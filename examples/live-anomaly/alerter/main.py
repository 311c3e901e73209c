"""The far alerter: triggered on its node's replica of the edge's alerts stream. It keeps the
reading indices it has alerted on as its state, so a reading is alerted once even if an alert
entry came twice, and writes one line per new alert (its output stream is the alert log)."""

import json
import os

MAX_KEPT = 10000  # indices remembered; the oldest go first

inp, out = os.environ["MYCEL_IN"], os.environ["MYCEL_OUT"]
seen = []
if os.path.exists(os.path.join(inp, "state")):
    with open(os.path.join(inp, "state")) as f:
        seen = json.load(f)
known = set(seen)
with open(os.path.join(inp, "batch")) as f:
    batch = json.load(f)

lines = []
for entry in batch["entries"]:
    try:
        alerts = json.loads(entry.get("text", ""))
    except ValueError:
        continue
    for alert in alerts if isinstance(alerts, list) else []:
        if not isinstance(alert, dict) or alert.get("i") in known:
            continue
        known.add(alert.get("i"))
        seen.append(alert.get("i"))
        lines.append(f"ALERT reading {alert.get('i')} value {alert.get('v')} z {alert.get('z')}")

with open(os.path.join(out, "state"), "w") as f:
    json.dump(seen[-MAX_KEPT:], f)
if lines:
    with open(os.path.join(out, "output"), "w") as f:
        f.write("\n".join(lines))
