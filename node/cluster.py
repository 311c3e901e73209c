"""Local clusters: N real node processes on 127.0.0.1, wired by bootstrap.

Used by ``mycel cluster up|down`` and by the test suite's cluster fixture, so tests
exercise exactly what an operator runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from node.errors import NodeError
from node.identity import load_or_create

CLUSTER_FILE = "cluster.json"


@dataclass
class ClusterNode:
    index: int
    pid: int
    peer_id: str
    api_url: str
    multiaddr: str
    data_dir: str
    region: str
    listen: str
    api: str


_ISSUED: set[int] = set()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, never the same one twice in this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _ISSUED:
            _ISSUED.add(port)
            return port


def start_node_process(
    data_dir: Path, listen: str, api: str, bootstrap: list[str], region: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "node.cli.main", "node", "start", "--data-dir", str(data_dir)]
    args += ["--listen", listen, "--api", api, "--region", region, "--no-mdns"]
    for address in bootstrap:
        args += ["--bootstrap", address]
    log = open(data_dir / "node.log", "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ, **(extra_env or {}))
    env.pop("MYCEL_DATA_DIR", None)
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for_peers(api_url: str, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            peers = http_json(f"{api_url}/v1/peers")["peers"]
            if sum(1 for p in peers if p["alive"]) >= expected:
                return
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.2)
    raise NodeError(f"node at {api_url} did not see {expected} peers within {timeout:.0f} s ({last or 'too few'})")


def wait_answering(proc: subprocess.Popen[bytes], api_url: str, log: Path, timeout: float = 60.0) -> None:
    """Wait until a node process's API answers; if the process exits first, say so with the
    tail of its log (a start on a loaded host can take many seconds; an exit is not slowness)."""
    deadline = time.monotonic() + timeout
    while not _answers(api_url):
        code = proc.poll()
        if code is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise NodeError(f"node process exited with {code} before its API answered; log ends:\n{tail}")
        if time.monotonic() > deadline:
            raise NodeError(f"node at {api_url} did not answer within {timeout:.0f} s; see {log}")
        time.sleep(0.1)


def _answers(api_url: str) -> bool:
    try:
        http_json(f"{api_url}/v1/node", timeout=2)
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class ClusterChain:
    pid: int
    rpc_url: str
    contract: str
    chain_id: int


def running_pids(directory: Path) -> list[int]:
    """PIDs of the cluster in ``directory`` that still run (none when there is no cluster file)."""
    try:
        nodes = read_cluster_file(directory)
        chain = read_cluster_chain(directory)
    except (NodeError, ValueError, TypeError, KeyError):
        return []
    pids = [node.pid for node in nodes] + ([chain.pid] if chain else [])
    return [pid for pid in pids if pid > 0 and process_alive(pid)]


def cluster_up(
    count: int,
    directory: Path,
    regions: list[str] | None = None,
    timeout: float = 60.0,
    chain: bool = False,
    price: int = 0,
    batch_size: int = 20,
    batch_interval: float = 2.0,
    start_timeout: float | None = None,
) -> list[ClusterNode]:
    """Start ``count`` nodes at once; returns once every node sees all the others.

    ``timeout`` bounds the wait for each node to see its peers; ``start_timeout`` (default:
    ``timeout``, at least 60 s, since N nodes starting together share the CPUs) bounds the
    wait for every API to answer.

    Each node's peer ID and ports are chosen before any starts. The first starts alone; then
    all the others start in parallel, each bootstrapping from the ones before it: the first
    already listens, so each joins at its first dial (the rest are re-dialed until they
    listen). Every PID goes
    in the cluster file the moment it is spawned, so a failure at any point stops everything
    started so far; a node whose API never answers is killed, not left behind.

    With ``chain``, first a dev chain (anvil) with the ledger deployed; each node gets a
    funded EVM key, settles there, and registers itself; the chain goes in the cluster file.
    """
    running = running_pids(directory)
    if running:
        raise NodeError(
            f"a cluster is already running in {directory} (pids {' '.join(map(str, running))}); "
            f"stop it with `mycel cluster down --dir {directory}`"
        )
    directory.mkdir(parents=True, exist_ok=True)
    nodes: list[ClusterNode] = []
    dev_chain: ClusterChain | None = None
    chain_env: dict[str, str] = {"MYCEL_CAPACITY_PRICE_PER_CPU_SECOND": str(price)}
    try:
        write_cluster_file(directory, nodes)
        if chain:
            from contracts.devchain import DEV_CHAIN_ID, start_dev_chain

            started = start_dev_chain(directory / "chain")
            dev_chain = ClusterChain(started.pid, started.rpc_url, started.contract, DEV_CHAIN_ID)
            write_cluster_file(directory, nodes, dev_chain)
            chain_env |= {
                "MYCEL_CHAIN_RPC_URL": started.rpc_url,
                "MYCEL_CHAIN_CONTRACT": started.contract,
                "MYCEL_CHAIN_BATCH_SIZE": str(batch_size),
                "MYCEL_CHAIN_BATCH_INTERVAL": str(batch_interval),
            }
        for index in range(count):
            data_dir = directory / f"node{index}"
            peer_id = load_or_create(data_dir).peer_id
            if dev_chain is not None:
                from contracts.keys import load_or_create_key

                started.fund(load_or_create_key(data_dir / "chain.key").address)
            region = regions[index] if regions and index < len(regions) else f"region-{index}"
            nodes.append(ClusterNode(index, 0, peer_id, "", "", str(data_dir), region, "", ""))
        start_deadline = time.monotonic() + (start_timeout or max(timeout, 60.0))
        for group in (nodes[:1], nodes[1:]):  # the first alone, so every other one's first dial finds it
            procs: dict[int, subprocess.Popen[bytes]] = {}
            for node in group:
                procs[node.index] = _spawn(node, nodes, chain_env)
                write_cluster_file(directory, [n for n in nodes if n.pid], dev_chain)
            _wait_all(directory, nodes, procs, dev_chain, chain_env, start_deadline)
        for node in nodes:
            wait_for_peers(node.api_url, count - 1, timeout)
    except BaseException:
        cluster_down(directory)
        raise
    return nodes


def _spawn(
    node: ClusterNode, nodes: list[ClusterNode], env: dict[str, str], again: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``node`` on fresh ports, bootstrapping from the nodes before it (started ``again``,
    from all the others: the later ones hold its old address); records its PID."""
    p2p_port, api_port = free_port(), free_port()
    node.listen = f"/ip4/127.0.0.1/tcp/{p2p_port}"
    node.api = f"127.0.0.1:{api_port}"
    node.api_url = f"http://{node.api}"
    node.multiaddr = f"{node.listen}/p2p/{node.peer_id}"
    others = [other for other in nodes if other is not node] if again else nodes[: node.index]
    bootstrap = [other.multiaddr for other in others]
    proc = start_node_process(Path(node.data_dir), node.listen, node.api, bootstrap, node.region, env)
    node.pid = proc.pid
    return proc


def _wait_all(
    directory: Path,
    nodes: list[ClusterNode],
    procs: dict[int, subprocess.Popen[bytes]],
    chain: ClusterChain | None,
    env: dict[str, str],
    deadline: float,
    attempts: int = 3,
) -> None:
    """Wait until every node's API answers. A node that exits first (a port handed out as free
    was taken before it bound it) is started again on other ports, up to ``attempts`` times."""
    tries = dict.fromkeys(procs, 1)
    pending = set(procs)
    while pending:
        for index in sorted(pending):
            node, proc = nodes[index], procs[index]
            if proc.poll() is not None:
                if tries[index] >= attempts:
                    raise NodeError(f"node {index} did not start; see {Path(node.data_dir) / 'node.log'}")
                tries[index] += 1
                procs[index] = _spawn(node, nodes, env, again=True)
                write_cluster_file(directory, nodes, chain)
            elif _answers(node.api_url):
                pending.discard(index)
        if pending and time.monotonic() > deadline:
            late = sorted(pending)
            raise NodeError(f"node(s) {late} did not answer in time; see {directory}/node*/node.log")
        if pending:
            time.sleep(0.1)


def write_cluster_file(directory: Path, nodes: list[ClusterNode], chain: ClusterChain | None = None) -> None:
    data: dict[str, Any] = {"nodes": [asdict(n) for n in nodes]}
    if chain is not None:
        data["chain"] = asdict(chain)
    (directory / CLUSTER_FILE).write_text(json.dumps(data, indent=1))


def _read(directory: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((directory / CLUSTER_FILE).read_text())
    except FileNotFoundError:
        raise NodeError(f"no cluster in {directory} (no {CLUSTER_FILE}); start one with `mycel cluster up`") from None
    return data


def read_cluster_file(directory: Path) -> list[ClusterNode]:
    return [ClusterNode(**item) for item in _read(directory)["nodes"]]


def read_cluster_chain(directory: Path) -> ClusterChain | None:
    chain = _read(directory).get("chain")
    return ClusterChain(**chain) if chain else None


def stop_process(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM, wait, then SIGKILL; True when the process had to be killed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return False
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def stop_processes(pids: list[int], timeout: float = 15.0) -> list[int]:
    """SIGTERM every process at once, wait up to ``timeout`` for all, then SIGKILL those left;
    returns the PIDs that had to be killed. All at once: each node shuts down on its own, so a
    cluster stops in the time of its slowest node rather than the sum of them all."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if process_alive(pid)]
        if left:
            time.sleep(0.02)
    left = [pid for pid in left if process_alive(pid)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def process_alive(pid: int) -> bool:
    """Whether ``pid`` still runs (reaped or zombie counts as gone)."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return False
    except ChildProcessError:
        pass  # not our child: fall back to probing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if state == "Z":
            return False
    return True


def cluster_down(directory: Path) -> list[int]:
    """Stop every node of the cluster in ``directory``; returns PIDs that needed SIGKILL."""
    try:
        nodes = read_cluster_file(directory)
        chain = read_cluster_chain(directory)
    except NodeError:
        return []
    killed = stop_processes([node.pid for node in nodes if node.pid > 0])
    if chain is not None:  # after the nodes, so none of them is mid-claim against a dead chain
        from contracts.devchain import stop_chain

        stop_chain(chain.pid)
    (directory / CLUSTER_FILE).unlink(missing_ok=True)
    return killed
