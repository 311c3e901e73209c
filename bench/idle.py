"""Idle cost of a node: CPU% and RSS per node of a converged N-node cluster doing nothing.

Starts N real node processes (loopback, no mDNS), waits until every node sees all the
others, lets them settle, then samples each process's CPU time (/proc/<pid>/stat: user +
system) over a window and its resident memory (/proc/<pid>/status VmRSS). Prints, per
node and overall, CPU% of one core and RSS, with median and spread (min-max). Then
measures what imports alone cost in a fresh interpreter: bare Python, ``import libp2p``,
py-libp2p as the node imports it (node/p2p/lean_imports.py), and the node's own modules, so
one can tell what dominates RSS.

With ``--against DIR`` the nodes of each round run this checkout's code and DIR's (another
checkout, e.g. the baseline), alternating for ``--rounds`` rounds; each side's figure is the
median over rounds of the per-node median CPU, with its spread, and the seconds from the last
node's API answering until every node lists every other as alive ("converged"). Idle CPU is
sensitive to the host's load (the load average is printed): compare sides of one run only.

Usage: python bench/idle.py [--nodes 5] [--seconds 20] [--settle 5] [--against DIR --rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import node.cluster  # noqa: E402
from bench.stats import alternate, code_of, cpu_seconds, machine_note, rss_mib  # noqa: E402
from bench.stats import spread as summary  # noqa: E402
from node.cluster import cluster_down, cluster_up  # noqa: E402


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def import_cost(statement: str) -> tuple[float, float]:
    """(seconds, RSS MiB) of a fresh interpreter after ``statement``."""
    probe = (
        "import time; t = time.perf_counter()\n"
        f"{statement}\n"
        "t = time.perf_counter() - t\n"
        "rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1]\n"
        "print(t, int(rss) / 1024)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True, cwd=REPO)
    seconds, rss = out.stdout.split()
    return float(seconds), float(rss)


def spread(values: list[float], unit: str, digits: int) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"median {mid:.{digits}f}{unit} (min {low:.{digits}f}, max {high:.{digits}f})"


@dataclass(frozen=True)
class Sample:
    cpu: list[float]  # % of a core, per node
    converged: float  # seconds from the last node's API answering until all see all alive


def sample(nodes: int, seconds: float, settle: float, tree: Path | None, work: Path) -> Sample:
    """One cluster of ``nodes`` running ``tree``'s code (None: this checkout), sampled idle."""
    marks: list[float] = []
    original = node.cluster.wait_for_peers

    def marking(api_url: str, expected: int, timeout: float) -> None:  # cluster_up's first call: all answer
        if not marks:
            marks.append(time.monotonic())
        original(api_url, expected, timeout)

    directory = Path(tempfile.mkdtemp(prefix="cluster-", dir=work))
    node.cluster.wait_for_peers = marking
    try:
        with code_of(tree):
            members = cluster_up(nodes, directory, timeout=120)
        converged = time.monotonic() - marks[0]
        time.sleep(settle)  # a fixed settle time is the measurement's design, not a wait for a condition
        before = {m.pid: cpu_seconds(m.pid) for m in members}
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        cpu = [100 * (cpu_seconds(m.pid) - before[m.pid]) / elapsed for m in members]
    finally:
        node.cluster.wait_for_peers = original
        cluster_down(directory)
    return Sample(cpu, converged)


def compare(options: argparse.Namespace, work: Path) -> None:
    trees = {"this": None, "against": options.against.resolve()}
    jobs = {
        name: (lambda tree=tree: sample(options.nodes, options.seconds, options.settle, tree, work))
        for name, tree in trees.items()
    }

    def report(index: int, name: str, result: Sample) -> None:
        cpu = summary(result.cpu)
        converged = f"converged {result.converged:.2f} s"
        print(f"  round {index + 1} {name:8s} CPU per node {cpu.show(2)} %, {converged}", flush=True)

    print(f"idle, {options.nodes} nodes, {options.rounds} rounds alternating, {options.seconds:.0f} s each")
    results = alternate(jobs, options.rounds, report)
    for name, tree in trees.items():
        cpu = summary([statistics.median(r.cpu) for r in results[name]])
        converged = summary([r.converged for r in results[name]])
        print(f"{name:8s} {tree or REPO}: CPU per node {cpu.show(2)} %, converged {converged.show(2)} s")
    print(f"  {machine_note()}; idle CPU figures move with the load: compare sides of one run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after convergence before sampling")
    parser.add_argument("--against", type=Path, help="another checkout: its nodes alternate with this one's")
    parser.add_argument("--rounds", type=int, default=3, help="rounds with --against")
    options = parser.parse_args()
    if options.against is not None:
        work = Path(tempfile.mkdtemp(prefix="mycel-idle-bench-"))
        try:
            compare(options, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    work = Path(tempfile.mkdtemp(prefix="mycel-idle-bench-"))
    try:
        nodes = cluster_up(options.nodes, work / "cluster")
        try:
            time.sleep(options.settle)  # a fixed settle time is the measurement's design, not a wait for a condition
            pids = [node.pid for node in nodes]
            before = {pid: cpu_seconds(pid) for pid in pids}
            started = time.monotonic()
            time.sleep(options.seconds)
            elapsed = time.monotonic() - started
            cpu = {pid: 100 * (cpu_seconds(pid) - before[pid]) / elapsed for pid in pids}
            rss = {pid: rss_mib(pid) for pid in pids}
            count = {pid: threads(pid) for pid in pids}
        finally:
            cluster_down(work / "cluster")
        print(f"idle, {options.nodes} converged nodes, sampled over {elapsed:.1f} s")
        for node in nodes:
            pid = node.pid
            print(f"  node {node.index}: CPU {cpu[pid]:.2f}% of a core, RSS {rss[pid]:.1f} MiB, {count[pid]} threads")
        print(f"  CPU per node: {spread(list(cpu.values()), '%', 2)}")
        print(f"  RSS per node: {spread(list(rss.values()), ' MiB', 1)}")
        print("imports alone, fresh interpreter (seconds, RSS):")
        for label, statement in (
            ("bare python", "pass"),
            ("import libp2p", "import libp2p"),
            ("libp2p + kad_dht + pubsub", "import libp2p, libp2p.kad_dht, libp2p.pubsub.gossipsub"),
            ("node.p2p (py-libp2p as a node imports it)", "import node.p2p"),
            ("wasmtime", "import wasmtime"),
            ("web3", "import web3"),
            ("node.service (everything a node imports)", "import node.service"),
        ):
            seconds, mib = import_cost(statement)
            print(f"  {label:45s} {seconds:6.2f} s {mib:7.1f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
