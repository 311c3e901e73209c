"""Agent bundles the trigger tests deploy: a counting fold over stream batches and an echo."""

from __future__ import annotations

from pathlib import Path

MANIFEST = """name = "{name}"
version = "1.0.0"
runtime = "python"
entrypoint = "main.py"
[limits]
cpu_seconds = 5
wall_seconds = 20
"""

# state: {"count": entries seen, "last": the last seq}; a batch that does not follow "last" is a
# processing error the agent itself makes visible (it counts "gaps" and "repeats")
COUNTER = """import json, os
inp, out = os.environ["MYCEL_IN"], os.environ["MYCEL_OUT"]
state = {"count": 0, "last": 0, "gaps": 0, "repeats": 0}
if os.path.exists(os.path.join(inp, "state")):
    state = json.load(open(os.path.join(inp, "state")))
batch = json.load(open(os.path.join(inp, "batch")))
for entry in batch["entries"]:
    if entry["seq"] <= state["last"]:
        state["repeats"] += 1
    elif entry["seq"] != state["last"] + 1:
        state["gaps"] += 1
    state["last"] = max(state["last"], entry["seq"])
    state["count"] += 1
json.dump(state, open(os.path.join(out, "state"), "w"))
open(os.path.join(out, "output"), "w").write(str(state["count"]))
"""

ECHO = """import os
inp, out = os.environ["MYCEL_IN"], os.environ["MYCEL_OUT"]
calls = 0
if os.path.exists(os.path.join(inp, "state")):
    calls = int(open(os.path.join(inp, "state")).read())
request = open(os.path.join(inp, "request")).read()
open(os.path.join(out, "state"), "w").write(str(calls + 1))
open(os.path.join(out, "output"), "w").write(f"{request.upper()} #{calls + 1}")
"""


def write_agent(directory: Path, name: str, code: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mycel-agent.toml").write_text(MANIFEST.format(name=name))
    (directory / "main.py").write_text(code)
    return directory
