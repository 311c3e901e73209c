"""What starting nodes costs: one node's CPU, wall time and RSS until its API answers, and the wall
time of ``cluster_up`` (what ``mycel cluster up`` runs) for N nodes with each node's start CPU and
idle RSS once converged.

With ``--against CHECKOUT`` every round runs both checkouts, the order rotated (bench/stats.py),
so a figure and its baseline share the machine's load. Each checkout's packages are byte-compiled
first: with PYTHONDONTWRITEBYTECODE set (as in the test environment) every node would otherwise
compile the project's sources at each start, which an installed node never does.

Usage: python bench/start.py [--rounds 3] [--nodes 10] [--settle 5] [--against /path/to/other/checkout] [--quick]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.stats import alternate, code_of, cpu_seconds, machine_note, rss_mib, spread  # noqa: E402
from node.cluster import cluster_down, cluster_up, free_port  # noqa: E402

PACKAGES = ("node", "agents", "storage", "contracts", "sdk")


@dataclass(frozen=True)
class Start:
    cpu: float  # seconds of CPU, all threads, until the API answered
    wall: float
    rss: float  # MiB, when the API answered


@dataclass(frozen=True)
class ClusterStart:
    wall: float  # cluster_up, from the first spawn until every node sees all the others
    cpu: list[float]  # per node, at that moment
    rss: list[float]  # per node, MiB, after settling


def _answers(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{api}/v1/peers", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def one_node(tree: Path) -> Start:
    """Start one node of ``tree``, no peers, and read its cost once its API answers."""
    work = Path(tempfile.mkdtemp(prefix="mycel-start-bench-"))
    api = f"127.0.0.1:{free_port()}"
    args = [sys.executable, "-m", "node.cli.main", "node", "start", "--data-dir", str(work)]
    args += ["--listen", f"/ip4/127.0.0.1/tcp/{free_port()}", "--api", api, "--region", "bench", "--no-mdns"]
    env = dict(os.environ, PYTHONPATH=str(tree))
    began = time.monotonic()
    with open(work / "node.log", "wb") as log:
        proc = subprocess.Popen(args, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while not _answers(api):  # polling the process under test is the measurement
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited: {(work / 'node.log').read_text()[-2000:]}")
            time.sleep(0.02)
        return Start(cpu_seconds(proc.pid), time.monotonic() - began, rss_mib(proc.pid))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


def cluster(tree: Path, nodes: int, settle: float) -> ClusterStart:
    work = Path(tempfile.mkdtemp(prefix="mycel-cluster-bench-"))
    try:
        with code_of(tree):
            began = time.monotonic()
            started = cluster_up(nodes, work / "cluster")
            wall = time.monotonic() - began
        try:
            cpu = [cpu_seconds(node.pid) for node in started]
            time.sleep(settle)  # a fixed settle time is the measurement's design, not a wait for a condition
            rss = [rss_mib(node.pid) for node in started]
        finally:
            cluster_down(work / "cluster")
        return ClusterStart(wall, cpu, rss)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=10, help="cluster size (0: no cluster runs)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after convergence before reading RSS")
    parser.add_argument("--against", type=Path, help="another checkout, measured in the same rounds")
    parser.add_argument("--quick", action="store_true", help="one round, a 2-node cluster, no settling")
    options = parser.parse_args()
    if options.quick:
        options.rounds, options.nodes, options.settle = 1, 2, 0.0
    trees = {"this": REPO} | ({"against": options.against.resolve()} if options.against else {})
    for tree in trees.values():
        for package in PACKAGES:
            compileall.compile_dir(tree / package, quiet=1)
    singles = alternate({name: partial(one_node, tree) for name, tree in trees.items()}, options.rounds)
    print(f"one node, until its API answers ({options.rounds} rounds; median (min-max)):")
    for name, samples in singles.items():
        cpu = spread([s.cpu for s in samples]).show(2)
        wall = spread([s.wall for s in samples]).show(2)
        print(f"  {name:8s} CPU {cpu} s, wall {wall} s, RSS {spread([s.rss for s in samples]).show()} MiB")
    if options.nodes:
        runs = alternate(
            {name: partial(cluster, tree, options.nodes, options.settle) for name, tree in trees.items()},
            options.rounds,
        )
        print(f"cluster_up of {options.nodes} nodes, until each sees the others:")
        for name, samples in runs.items():
            wall = spread([s.wall for s in samples]).show(1)
            cpu = spread([c for s in samples for c in s.cpu]).show(2)
            rss = spread([r for s in samples for r in s.rss]).show()
            print(f"  {name:8s} wall {wall} s; per node: start CPU {cpu} s, RSS after {options.settle:.0f} s {rss} MiB")
    print(machine_note())


if __name__ == "__main__":
    main()
