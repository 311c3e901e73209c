"""SDK quickstart: store data, deploy an agent, run it next to the data, verify what comes back.

Against a running node (`mycel node start`, or any node of `mycel cluster up`):

    python examples/sdk_quickstart.py --api http://127.0.0.1:5080

Every step checks the node rather than trusting it: the upload's CID is recomputed here,
the agent id is the one packing gives locally, the result is re-hashed to its CID and the
executing node's Ed25519 receipt is verified.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdk import SyncClient

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=os.environ.get("MYCEL_API", "http://127.0.0.1:5080"))
    opts = parser.parse_args()

    with SyncClient(opts.api) as client, tempfile.TemporaryDirectory() as scratch:
        print(f"node {client.node()['peer_id']} with {len(client.peers())} peer(s)")
        text = client.put(b"the quick brown fox jumps over the lazy dog\nthe dog sleeps\n")
        print(f"stored the text as {text}")
        agent = client.deploy(HERE / "wasm-wordcount")
        print(f"deployed wasm-wordcount as {agent}")
        job = client.run(agent, inputs={"text": text})
        chosen = next(c for c in job.explain() if c["verdict"] == "chosen")
        print(f"job {job.job_id} {job.status} on {job.node}: {chosen['reason']}")
        receipt = job.receipt()
        print(f"receipt verified: signed by {receipt.node}, {receipt.usage.cpu_seconds:.3f} CPU-s")
        out = job.result(Path(scratch) / "result")
        counts = json.loads((out / "counts.json").read_text())
        print(f"result {job.result_cid} verified by CID: {counts['words']} words, top {counts['top'][:3]}")


if __name__ == "__main__":
    main()
