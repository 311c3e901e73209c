"""Stream append latency: local appends and append-to-replica, against an in-process baseline.

A 2-node cluster (real processes, real libp2p on 127.0.0.1); B replicates A's stream. Each
round runs, alternately:

* baseline: the irreducible work in this process: sign one entry (Ed25519), verify it,
  write it to LMDB in its own transaction;
* local: the SDK signs one entry and appends it to A over HTTP (A verifies, checks the
  chain, writes LMDB in a thread, answers);
* replica: the same append to A, then B asked to pull now (``POST .../subscribe``): B
  requests the entries over /mycel/stream/1.0.0, verifies signature and chain, stores them.
  (Without that request B pulls within its 2 s poll.)
* pull-idle: B asked to pull when A has nothing new (one libp2p request, no write).

Usage: python bench/streams.py [--rounds 200] [--payload 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import lmdb  # noqa: E402
import nacl.signing  # noqa: E402

from node.cluster import cluster_down, cluster_up  # noqa: E402
from sdk import Client  # noqa: E402
from storage.cid import CID, DAG_CBOR  # noqa: E402
from storage.streamentry import sign_entry, verify_entry  # noqa: E402


def _summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    median = statistics.median(ordered) * 1000
    return f"{name:<10} n={len(samples):<5} median {median:7.2f} ms   p99 {p99 * 1000:7.2f} ms"


async def run(rounds: int, payload_size: int, work: Path) -> None:
    nodes = cluster_up(2, work / "cluster", timeout=60)
    a, b = nodes
    env = lmdb.open(str(work / "baseline"), map_size=256 << 20)
    key = nacl.signing.SigningKey(os.urandom(32))
    payload = os.urandom(payload_size)
    samples: dict[str, list[float]] = {"baseline": [], "local": [], "replica": [], "pull-idle": []}
    try:
        async with Client(a.api_url) as at_a, Client(b.api_url) as at_b:
            local, replicated = at_a.stream("bench-local", key), at_a.stream("bench-replica", key)
            await local.append(payload)
            await replicated.append(payload)
            await at_b._call("POST", f"/v1/streams/{replicated.id}/subscribe", json={"peer": a.peer_id})
            prev = None
            for seq in range(1, rounds + 1):
                started = time.perf_counter()
                raw = sign_entry(key, "bench-base", seq, prev, payload, int(time.time() * 1000))
                entry = verify_entry(raw)
                with env.begin(write=True) as txn:
                    txn.put(seq.to_bytes(8, "big"), raw)
                prev = CID.for_block(raw, DAG_CBOR)
                samples["baseline"].append(time.perf_counter() - started)
                assert entry.seq == seq

                started = time.perf_counter()
                await local.append(payload)
                samples["local"].append(time.perf_counter() - started)

                started = time.perf_counter()
                answer = await replicated.append(payload)
                pulled = await at_b._call("POST", f"/v1/streams/{replicated.id}/subscribe", json={"peer": a.peer_id})
                samples["replica"].append(time.perf_counter() - started)
                assert pulled["head_seq"] == answer["head_seq"]

                started = time.perf_counter()  # B asks A with nothing new: the libp2p round trip and reads
                await at_b._call("POST", f"/v1/streams/{replicated.id}/subscribe", json={"peer": a.peer_id})
                samples["pull-idle"].append(time.perf_counter() - started)
    finally:
        env.close()
        cluster_down(work / "cluster")
    print(f"stream append latency, {rounds} rounds, {payload_size}-byte payloads, alternating")
    for name, values in samples.items():
        print(_summary(name, values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--payload", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as work:
        asyncio.run(run(args.rounds, args.payload, Path(work)))


if __name__ == "__main__":
    main()
