"""A two-step pipeline: each step's result CID is the next step's input, and each step runs
where its input already is.

1. sensor-anomaly over telemetry stored on an edge node (it runs there; the telemetry stays);
2. wasm-wordcount over step 1's findings (they are on that same node, so it runs there too).

    python examples/pipeline.py --api http://127.0.0.1:5080 --data-api http://127.0.0.1:5081

``--data-api`` is the edge node the telemetry is stored on (default: the --api node).
Prints each step's node, reason and input bytes moved; ``--json`` prints them as JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdk import SyncClient

HERE = Path(__file__).resolve().parent


def telemetry(directory: Path) -> Path:
    """10,000 rows with injected faults, from the sensor-anomaly example's generator."""
    spec = importlib.util.spec_from_file_location("generate", HERE / "sensor-anomaly" / "generate_telemetry.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_csv(directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=os.environ.get("MYCEL_API", "http://127.0.0.1:5080"))
    parser.add_argument("--data-api", default=None)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()

    steps = []
    with SyncClient(opts.api) as client, SyncClient(opts.data_api or opts.api) as edge:
        with tempfile.TemporaryDirectory() as scratch:
            source = edge.put(telemetry(Path(scratch) / "telemetry"))
        current = source
        for name, input_name in (("sensor-anomaly", "telemetry"), ("wasm-wordcount", "text")):
            agent = client.deploy(HERE / name)
            job = client.run(agent, inputs={input_name: current})
            job.receipt()  # verified: this node signed this job and this result
            chosen = next(c for c in job.explain() if c["verdict"] == "chosen")
            steps.append({"step": name, "input": str(current), "node": job.node, "reason": chosen["reason"],
                          "moved_bytes": chosen["moved_bytes"], "result": str(job.result_cid)})  # fmt: skip
            current = job.result_cid  # the next step's input
        with tempfile.TemporaryDirectory() as scratch:
            final = json.loads((client.get(current, Path(scratch) / "final") / "counts.json").read_text())
    if opts.json:
        print(json.dumps({"steps": steps, "final": final}))
        return
    for step in steps:
        print(f"{step['step']:15} on {step['node']}  moved {step['moved_bytes']} B  -> {step['result']}")
        print(f"{'':15} why: {step['reason']}")
    print(f"final summary: {final['files']} files, {final['words']} words")


if __name__ == "__main__":
    main()
