"""The planet on one machine: the same jobs over the emulated WAN and over loopback, in one run.

Builds the harness's standard planet (eu, us, ap asked for 1 Gbit/s: ~0.26 Gbit/s for one TCP
flow between regions, ~0.85-0.9 for 8-16, README, WAN harness; an edge site in the eu metro behind a 20 Mbit/s uplink
with 0.5% loss; eu<->us 80 ms RTT, eu<->ap 160, us<->ap 120) with five real
nodes (eu0, us0, us1, ap0, edge0), and a loopback cluster with the same roles and region labels.
For each it measures, ``--runs`` times (each run builds both afresh):

1. job latency by region pair: a wordcount job submitted in one region and bound to another
   (``regions``), submit -> done with the receipt checked, median of ``--jobs`` per pair;
2. data gravity: ``--size`` MiB of random bytes (distinct each run, read by the agent) held at the
   edge, a job placed freely (runs at the edge) against one bound to the us (the input is shipped
   through the edge's uplink): seconds, and block bytes sent by all nodes (``mycel_bytes_out_total``:
   blocks only, the result and receipt travel in the job protocol);
3. failover: a 3 s python job bound to the us, its executor SIGKILLed once the agent runs;
   seconds from the kill to the job's dispatch to the other us node.

Prints median (min-max) over the runs for the WAN and loopback, and their ratio. Then, on a planet
with NATs (``topology.natted()``: a relay, two home NATs, one symmetric NAT), ``--nat-runs`` times:
seconds until every NAT'd node announces a relayed address; a job from one home NAT to an edge
behind the other, first through the relay and then once DCUtR made the connection direct; and a
warm job through the symmetric NAT, which stays relayed. (``--runs 0`` for the NAT part alone.)
With ``--scale N`` (e.g. 30), ``--scale-runs`` times, N nodes spread round-robin over the eu, us and
ap sites, and a loopback cluster with the same region labels: convergence (seconds from every API
answering until every node has heard every other's announcement), then ``--scale-jobs`` trivial
jobs submitted in the eu, each over a fresh ``--scale-size`` MiB input (distinct random bytes) put
on one ap node, free to run anywhere: how long until the requester heard the holder's summary
listing it, placement time per job with N candidates (``placing`` -> ``running``), submit -> done,
and how many ran on the holder, the node placement should pick (a miss is explained on stderr).
Needs root (network namespaces); says so in one line otherwise.
Usage: python bench/planet.py [--runs 3] [--jobs 3] [--size 8] [--scale 30 --scale-runs 1 --scale-size 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node.cluster import cluster_down, cluster_up, http_json  # noqa: E402
from node.harness import netns  # noqa: E402
from node.harness.planet import Planet  # noqa: E402
from node.harness.topology import natted, standard  # noqa: E402

MIB = 1 << 20
WORDCOUNT = REPO / "examples" / "wasm-wordcount"
SLOW = REPO / "tests" / "agents" / "fixtures" / "slow-python"
ROLES = ["eu0", "us0", "us1", "ap0", "edge0"]
REGIONS = ["eu", "us", "us", "ap", "eu"]  # edge0 sits in the eu metro
PAIRS = [("eu0", "us"), ("eu0", "ap"), ("us0", "ap"), ("us0", "eu"), ("ap0", "eu"), ("ap0", "us")]


def _post(url: str, body: Any, content_type: str = "application/json") -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _blob(node: Any, data: bytes) -> str:
    return str(_post(f"{node.api_url}/v1/blobs", data, "application/octet-stream")["cid"])


def _run(node: Any, spec: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    job_id = _post(f"{node.api_url}/v1/jobs", spec)["job_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = http_json(f"{node.api_url}/v1/jobs/{job_id}")
        if job["state"] in ("done", "failed", "cancelled"):
            if job["state"] != "done":
                raise RuntimeError(f"job {job_id} {job['state']}: {job['transitions'][-1]['reason']}")
            return job
        time.sleep(0.05)
    steps = "; ".join(f"{t['state']}: {t['reason']}" for t in job["transitions"][-4:])
    raise RuntimeError(f"job {job_id} did not finish in {timeout:.0f} s (last: {steps})")


def _bytes_out(nodes: dict[str, Any]) -> float:
    total = 0.0
    for node in nodes.values():
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{node.api_url}/metrics", timeout=30) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("mycel_bytes_out_total "):
                    total += float(line.split()[-1])
    return total


def _pack(agent: Path, node: Any) -> str:
    env = dict(os.environ, MYCEL_DATA_DIR=node.data_dir)
    done = subprocess.run([sys.executable, "-m", "node.cli.main", "agent", "pack", str(agent)],
                          capture_output=True, text=True, env=env, check=True)  # fmt: skip
    return done.stdout.strip()


def measure(nodes: dict[str, Any], jobs: int, size: int) -> dict[str, float]:
    """One run's figures on one network (nodes by role)."""
    figures: dict[str, float] = {}
    agents = {name: _pack(WORDCOUNT, nodes[name]) for name in ("eu0", "us0", "ap0")}
    small = {name: _blob(nodes[name], os.urandom(2000)) for name in ROLES}
    for requester, region in PAIRS:
        holder = next(n for n, r in zip(ROLES, REGIONS, strict=True) if r == region and n != "edge0")
        spec = {"agent": agents[requester], "inputs": {"text": small[holder]}, "regions": [region]}
        _run(nodes[requester], spec)  # warm: the agent fetched and compiled there
        samples = []
        for _ in range(jobs):
            started = time.perf_counter()
            _run(nodes[requester], spec)  # a fresh job id each time
            samples.append(time.perf_counter() - started)
        figures[f"job {requester[:2]}->{region} s"] = statistics.median(samples)

    requester, edge = nodes["us0"], nodes["edge0"]
    _run(requester, {"agent": agents["us0"], "inputs": {"text": small["edge0"]}})  # warm the edge
    dataset = _blob(edge, os.urandom(size))
    for label, extra in (("gravity", {}), ("ship", {"regions": ["us"]})):
        before, started = _bytes_out(nodes), time.perf_counter()
        _run(requester, {"agent": agents["us0"], "inputs": {"text": dataset}} | extra)
        figures[f"{label} s"] = time.perf_counter() - started
        figures[f"{label} KiB moved"] = (_bytes_out(nodes) - before) / 1024

    requester = nodes["eu0"]
    data = {_blob(nodes[name], b"payload") for name in ("us0", "us1")}.pop()
    slow = _pack(SLOW, requester)
    job_id = _post(f"{requester.api_url}/v1/jobs", {"agent": slow, "inputs": {"data": data}, "args": ["3"],
                                                      "regions": ["us"]})["job_id"]  # fmt: skip
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        job = http_json(f"{requester.api_url}/v1/jobs/{job_id}")
        reason = str(job["transitions"][-1]["reason"])
        if job["state"] == "running" and reason.startswith("dispatched to "):
            chosen = next(nodes[n] for n in ("us0", "us1") if nodes[n].peer_id in reason)
            if _in_sandbox(chosen):
                victim = chosen
        time.sleep(0.05)
    if victim is None:
        raise RuntimeError("the failover job never started running")
    killed = time.time()
    os.kill(victim.pid, signal.SIGKILL)
    job = _wait_done(requester, job_id)
    survivor = next(nodes[n] for n in ("us0", "us1") if nodes[n] is not victim)
    redispatch = next(t["at"] for t in job["transitions"] if t["reason"] == f"dispatched to {survivor.peer_id}")
    figures["failover s"] = redispatch - killed
    return figures


def _in_sandbox(node: Any) -> bool:
    with urllib.request.urlopen(f"{node.api_url}/metrics", timeout=30) as response:
        return any(line.startswith("mycel_jobs_in_sandbox 1") for line in response.read().decode().splitlines())


def _wait_done(node: Any, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job: dict[str, Any] = http_json(f"{node.api_url}/v1/jobs/{job_id}")
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise RuntimeError(f"job {job_id} did not finish")


@contextlib.contextmanager
def wan(directory: Path) -> Iterator[dict[str, Any]]:
    planet = Planet(standard(), directory)
    try:
        planet.up()
        started = planet.start_nodes(["eu", "us", "us", "ap", "edge"])
        planet.wait_mesh(timeout=120)
        yield dict(zip(ROLES, started, strict=True))
    finally:
        planet.down()


@contextlib.contextmanager
def loopback(directory: Path) -> Iterator[dict[str, Any]]:
    try:
        yield dict(zip(ROLES, cluster_up(len(ROLES), directory, REGIONS, timeout=120), strict=True))
    finally:
        cluster_down(directory)


SCALE_SITES = ["eu", "us", "ap"]


@contextlib.contextmanager
def wan_scale(directory: Path, count: int) -> Iterator[list[Any]]:
    planet = Planet(standard(), directory)
    try:
        planet.up()
        yield planet.start_nodes([SCALE_SITES[i % 3] for i in range(count)])
    finally:
        planet.down()


@contextlib.contextmanager
def loopback_scale(directory: Path, count: int) -> Iterator[list[Any]]:
    try:
        yield cluster_up(count, directory, [SCALE_SITES[i % 3] for i in range(count)], timeout=300)
    finally:
        cluster_down(directory)


def _alive_peers(node: Any) -> int:
    try:
        return sum(1 for p in http_json(f"{node.api_url}/v1/peers")["peers"] if p["alive"])
    except (OSError, KeyError, ValueError):
        return 0


def _seq_of(seer: Any, node: Any) -> int:
    """The sequence number of ``node``'s announcement as ``seer`` last heard it (-1: not heard)."""
    peers = http_json(f"{seer.api_url}/v1/peers")["peers"]
    return next((int(p["seq"]) for p in peers if p["peer_id"] == node.peer_id), -1)


def _miss(job: dict[str, Any], requester: Any, holder: Any, names: dict[str, str]) -> str:
    """Why a job did not run on the holder, as the requester's placement explains it."""
    placement = http_json(f"{requester.api_url}/v1/jobs/{job['job_id']}/placement")["candidates"]
    rows = [r for r in placement if r["verdict"] == "chosen" or r["peer_id"] == holder.peer_id]
    said = "; ".join(f"{names.get(r['peer_id'], r['peer_id'])} {r['verdict']}: {r['reason']}" for r in rows)
    return said or "the holder is not among the candidates"


def measure_scale(nodes: list[Any], jobs: int, size: int) -> dict[str, float]:
    """Convergence of ``nodes`` (their APIs answer), then placement among all of them.

    Each job reads a fresh ``size``-byte input (distinct random bytes) put on one ap node just
    before, submitted in the eu once the requester heard the holder's announcement listing it.
    The expected node is the holder: it is the only node holding the input, and moving a few
    MiB across 160 ms costs more than any other term of the score. (A tiny input is a weak test:
    the holder's cost is 0 and every other node's one request's latency, so it says little about
    the score, and much about whether the view knew the holder.)"""
    started = time.monotonic()
    waiting = list(nodes)
    while waiting:
        if time.monotonic() - started > 300:
            raise RuntimeError(f"{len(waiting)} of {len(nodes)} nodes never heard every other")
        waiting = [node for node in waiting if _alive_peers(node) < len(nodes) - 1]
        time.sleep(0.2)
    figures = {"converge s": time.monotonic() - started}
    print(f"  {len(nodes)} nodes converged in {figures['converge s']:.1f} s", file=sys.stderr, flush=True)
    requester = next(n for n in nodes if n.region == "eu")
    holder = [n for n in nodes if n.region == "ap"][-1]
    names = {n.peer_id: f"{getattr(n, 'name', f'node{i}')}({n.region})" for i, n in enumerate(nodes)}
    agent = _pack(WORDCOUNT, requester)
    _run(requester, {"agent": agent, "inputs": {"text": _blob(holder, os.urandom(2000))}})  # warm: compiled there
    placement, latency, heard, on_holder = [], [], [], 0
    for index in range(jobs):
        before = _seq_of(requester, holder)
        put = time.perf_counter()
        spec = {"agent": agent, "inputs": {"text": _blob(holder, os.urandom(size))}}
        _until("the requester hears the holder's new summary", lambda seq=before: _seq_of(requester, holder) > seq, 60)
        heard.append(time.perf_counter() - put)
        begun = time.perf_counter()
        job = _run(requester, spec)
        latency.append(time.perf_counter() - begun)
        states = [(t["state"], float(t["at"])) for t in job["transitions"]]
        placing = next(at for state, at in states if state == "placing")
        placement.append(next(at for state, at in states if state == "running") - placing)
        if any(t["reason"] == f"dispatched to {holder.peer_id}" for t in job["transitions"]):
            on_holder += 1
        else:
            print(f"  job {index + 1}: not on the holder: {_miss(job, requester, holder, names)}", file=sys.stderr,
                  flush=True)  # fmt: skip
    figures["summary heard ms"] = statistics.median(heard) * 1000
    figures["placement ms"] = statistics.median(placement) * 1000
    figures["submit->done ms"] = statistics.median(latency) * 1000
    figures["on the expected node %"] = 100.0 * on_holder / jobs
    return figures


NAT_ENV = {"MYCEL_P2P_AUTONAT_INTERVAL_SECONDS": "1", "MYCEL_NODE_ANNOUNCE_INTERVAL": "2"}


def _until(what: str, check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"never: {what}")
        time.sleep(0.1)


def _nat(node: Any) -> dict[str, Any]:
    info: dict[str, Any] = http_json(f"{node.api_url}/v1/node")["nat"]
    return info


def measure_nat(directory: Path) -> dict[str, float]:
    """One run on the NAT planet: reachability, relayed then direct jobs, a symmetric NAT's job."""
    figures: dict[str, float] = {}
    planet = Planet(natted(), directory)
    try:
        planet.up()
        nodes = planet.start_nodes(["eu"], env=NAT_ENV | {"MYCEL_P2P_RELAY": "true"})
        nodes += planet.start_nodes(["us", "home", "home2", "cgn"], env=NAT_ENV)
        started = time.monotonic()
        planet.wait_mesh(timeout=120)
        _, _, edge, client, cgn = nodes
        _until("every NAT'd node has a relayed address", lambda: all(_nat(n)["relayed_addrs"] for n in nodes[2:]))
        _until("they are announced", lambda: all(_announced(nodes[1], n) for n in nodes[2:]))
        figures["NAT reachable s"] = time.monotonic() - started  # from all APIs up
        data = _blob(edge, os.urandom(4000))
        for label, requester in (("home->home", client), ("cgn->home", cgn)):
            agent = _pack(WORDCOUNT, requester)
            spec = {"agent": agent, "inputs": {"text": data}}
            began = time.perf_counter()
            _run(requester, spec)  # dials through the relay; the edge fetches the agent over it
            figures[f"{label} 1st job s"] = time.perf_counter() - began
            if label == "home->home":
                _until("direct", lambda: _nat(client)["connections"].get(edge.peer_id) == "direct", 60)
                figures["home->home direct after s"] = time.perf_counter() - began
            kind = _nat(requester)["connections"].get(edge.peer_id, "none")
            began = time.perf_counter()
            _run(requester, spec)
            figures[f"{label} {kind} job s"] = time.perf_counter() - began
    finally:
        planet.down()
    return figures


def _announced(seer: Any, node: Any) -> bool:
    peers = http_json(f"{seer.api_url}/v1/peers")["peers"]
    return any(p["peer_id"] == node.peer_id and any("/p2p-circuit/" in a for a in p["addrs"]) for p in peers)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):9.3f} ({min(values):.3f}-{max(values):.3f})"


def _compare(wan_figures: dict[str, list[float]], loopback_figures: dict[str, list[float]]) -> None:
    """One row per figure: the WAN's and loopback's median (min-max) and their ratio."""
    if wan_figures:
        print(f"{'figure':24} {'WAN median (min-max)':>30} {'loopback median (min-max)':>30} {'ratio':>7}")
    for key, values in wan_figures.items():
        base = loopback_figures[key]
        ratio = f"{statistics.median(values) / statistics.median(base):7.2f}" if statistics.median(base) else "      -"
        print(f"{key:24} {_spread(values):>30} {_spread(base):>30} {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3, help="jobs per region pair and run")
    parser.add_argument("--size", type=int, default=8, help="MiB of input at the edge")
    parser.add_argument("--nat-runs", type=int, default=1, help="runs on the planet with NATs")
    parser.add_argument("--scale", type=int, default=0, help="nodes for the scale figures (0: none)")
    parser.add_argument("--scale-runs", type=int, default=1)
    parser.add_argument("--scale-jobs", type=int, default=10)
    parser.add_argument("--scale-size", type=float, default=4, help="MiB of each scale job's input")
    options = parser.parse_args()
    reason = netns.unavailable()
    if reason:
        sys.exit(f"bench/planet.py: {reason}")
    results: dict[str, dict[str, list[float]]] = {"wan": {}, "loopback": {}, "nat": {}, "wan-scale": {},
                                                  "loopback-scale": {}}  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="mycel-planet-bench-"))
    try:
        for run in range(options.runs):
            for kind, build in (("wan", wan), ("loopback", loopback)):
                with build(root / f"{kind}{run}") as nodes:
                    for key, value in measure(nodes, options.jobs, options.size * MIB).items():
                        results[kind].setdefault(key, []).append(value)
                print(f"run {run + 1}/{options.runs} {kind} done", file=sys.stderr, flush=True)
        for run in range(options.nat_runs):
            for key, value in measure_nat(root / f"nat{run}").items():
                results["nat"].setdefault(key, []).append(value)
            print(f"run {run + 1}/{options.nat_runs} nat done", file=sys.stderr, flush=True)
        for run in range(options.scale_runs if options.scale else 0):
            for kind, grow in (("wan-scale", wan_scale), ("loopback-scale", loopback_scale)):
                with grow(root / f"{kind}{run}", options.scale) as many:
                    for key, value in measure_scale(many, options.scale_jobs, int(options.scale_size * MIB)).items():
                        results[kind].setdefault(key, []).append(value)
                print(f"run {run + 1}/{options.scale_runs} {kind} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _compare(results["wan"], results["loopback"])
    for key, values in results["nat"].items():
        print(f"{key:28} {_spread(values):>30}   (behind NAT; no loopback equivalent)")
    if results["wan-scale"]:
        print(f"{options.scale} nodes over eu/us/ap, {options.scale_jobs} jobs a run, eu -> an ap node's "
              f"{options.scale_size:g} MiB input (expected: run on that node):")  # fmt: skip
    _compare(results["wan-scale"], results["loopback-scale"])


if __name__ == "__main__":
    main()
