"""In-process requester and executors wired by a loopback network, for protocol-level tests.

The loopback network delivers each request to the target's real ``JobExecution.handle``
and enforces the request's timeout the way a libp2p stream does: on timeout the caller
gets a NetworkError and the handler is cancelled (the stream closed under it); a protocol
ID the target does not serve is refused as multistream-select refuses it, with
ProtocolNotSupported. The
runtime is a stand-in that sleeps for ``args[0]`` seconds, or until the run's cancel
event is set, then writes a small result; it counts its runs and says when one started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nacl.signing

from agents.bundle import pack
from agents.executor import Executor
from agents.outcome import Outcome, OutcomeKind
from agents.runtime.base import RawRun, RunRequest, Workspace
from node.announce import PeerTable
from node.errors import NetworkError, ProtocolNotSupported
from node.metrics import Metrics
from node.scheduler.candidates import Candidate, to_announcement
from node.scheduler.dispatch import DispatchPolicy
from node.scheduler.dispatcher import JobService
from node.scheduler.execution import JobExecution
from node.scheduler.job import JobRecord
from node.scheduler.jobstore import JobStore
from node.scheduler.limits import Ceilings
from node.scheduler.protocol import PROTOCOL, OfferRun
from storage import dagcbor
from storage.blockstore import BlockStore
from storage.cid import CID

Handler = Callable[[str, bytes], Awaitable[list[bytes]]]


class LoopNet:
    """A P2PNetwork stand-in: requests go straight to the peer's handler, with the timeout enforced."""

    def __init__(self, peer_id: str, hub: dict[str, Handler]) -> None:
        self.peer_id = peer_id
        self.hub = hub
        self.requests: list[tuple[str, float]] = []  # (peer, timeout) of every request sent
        self.sent: list[tuple[str, str, str]] = []  # (peer, protocol ID, op) of every request sent
        self.speaks: dict[str, frozenset[str]] = {}  # the protocol IDs a peer serves (absent: every one)

    async def request(self, peer_id: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]:
        self.requests.append((peer_id, timeout))
        self.sent.append((peer_id, protocol, str(dagcbor.decode(payload)["op"])))  # type: ignore[index]
        handler = self.hub.get(peer_id)
        if handler is None:
            raise NetworkError(f"no route to {peer_id}")
        if protocol not in self.speaks.get(peer_id, frozenset({protocol})):
            raise ProtocolNotSupported(f"peer {peer_id} does not speak {protocol}")
        try:
            return await asyncio.wait_for(handler(self.peer_id, payload), timeout)
        except TimeoutError:
            raise NetworkError(f"peer {peer_id} did not answer within {timeout:.1f} s") from None

    async def session_request(self, peer_id: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]:
        """A session stream differs from a stream per request only in cost: the same answers."""
        return await self.request(peer_id, protocol, payload, timeout)

    async def ping(self, peer_id: str) -> float:
        return 0.001


class SleepyRuntime:
    """Sleeps ``args[0]`` seconds (or until cancelled), then writes ``done.txt``; exit code from ``args[1]``."""

    name = "python"
    version = "test-1"

    def __init__(self) -> None:
        self.runs = 0
        self.started = threading.Event()
        self.ended: list[float] = []
        self.limits: list[Any] = []

    def run(self, request: RunRequest, workspace: Workspace) -> RawRun:
        self.runs += 1
        self.limits.append(request.effective_limits)
        self.started.set()
        began = time.perf_counter()
        seconds = float(request.args[0]) if request.args else 0.0
        assert request.cancel is not None, "the node always gives a run its cancel event"
        cancelled = request.cancel.wait(seconds)
        self.ended.append(time.perf_counter())
        if cancelled:
            return _raw(Outcome.cancelled(), -9, b"", time.perf_counter() - began)
        (workspace.out / "done.txt").write_text("done\n")
        exit_code = int(request.args[1]) if len(request.args) > 1 else 0
        outcome = Outcome.ok() if exit_code == 0 else Outcome.failed(f"exit code {exit_code}")
        logs = b"killed: node_error fail over please\n"  # what an agent prints changes nothing
        return _raw(outcome, exit_code, logs, time.perf_counter() - began)


RAW_REPORTS_OUTCOME = dataclasses.fields(RawRun)[0].name == "outcome"


def _raw(outcome: Outcome, exit_code: int, logs: bytes, wall: float) -> RawRun:
    """A runtime's report, in the form of whichever agents/ release is checked out."""
    if RAW_REPORTS_OUTCOME:
        first: Any = outcome
    else:  # the status words of the runtimes before they reported an Outcome
        legacy = {OutcomeKind.OK: "ok", OutcomeKind.CANCELLED: "killed: signal SIGKILL"}
        first = legacy.get(outcome.kind, outcome.label)
    return RawRun(first, exit_code, logs, False, 0.01, 1, wall)


@dataclass
class Executing:
    peer_id: str
    execution: JobExecution
    runtime: SleepyRuntime
    metrics: Metrics


@dataclass
class Cluster:
    store: BlockStore
    hub: dict[str, Handler]
    requester: JobService
    executors: list[Executing]
    agent: CID
    jobs: JobStore
    closers: list[Callable[[], None]] = field(default_factory=list)

    async def final(self, job_id: str, timeout: float = 30.0) -> JobRecord:
        """Wait for the job to reach a final state (by condition, polling the job store)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.jobs.get(job_id)
            if job is not None and job.state.final:
                return job
            await asyncio.sleep(0.01)
        raise AssertionError(f"job {job_id} did not finish: {self.jobs.get(job_id)}")

    def close(self) -> None:
        for close in self.closers:
            close()

    def as_previous_release(self, executor: Executing) -> None:
        """Make ``executor`` a node of the release before ``offer_run``: it serves the 2.0.0 job
        protocol ID alone, and answers an ``offer_run`` sent there the way that code did (its
        decode_request raised "unknown op 'offer_run'" and its handler answered a malformed
        request with a declined offer_answer saying "bad request: ..."); the rest it handles."""
        network: Any = self.requester.network
        network.speaks[executor.peer_id] = frozenset({PROTOCOL})
        handle = executor.execution.handle

        async def previous(peer: str, request: bytes) -> list[bytes]:
            if dagcbor.decode(request).get("op") == OfferRun.OP:  # type: ignore[union-attr]
                refusal = {"op": "offer_answer", "accepted": False, "reason": "bad request: unknown op 'offer_run'"}
                return [dagcbor.encode(refusal)]
            return await handle(peer, request)

        self.hub[executor.peer_id] = previous


def write_agent(directory: Path, wall_seconds: int = 30) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.py").write_text("print('hi')\n")
    (directory / "mycel-agent.toml").write_text(
        'name = "sleepy"\nversion = "0.0.1"\nruntime = "python"\nentrypoint = "main.py"\n'
        f"[limits]\ncpu_seconds = 10\nmemory_mib = 256\nwall_seconds = {wall_seconds}\n"
    )
    return directory


def executor_candidate(peer_id: str, execution: Callable[[], JobExecution | None], **changes: Any) -> Candidate:
    running = execution()
    base: dict[str, Any] = {
        "peer_id": peer_id,
        "region": "eu",
        "runtimes": ("wasm", "python"),
        "cpu_cores": 2,
        "running_jobs": running.running if running else 0,
    }
    base.update(changes)
    return Candidate(**base)


def build(
    tmp_path: Path,
    executors: int = 1,
    policy: DispatchPolicy | None = None,
    wall_seconds: int = 30,
    ceilings: Ceilings | None = None,
) -> Cluster:
    store = BlockStore(tmp_path / "blocks")
    agent = pack(write_agent(tmp_path / "agent", wall_seconds), store).agent_id
    hub: dict[str, Handler] = {}
    exchange: Any = SimpleNamespace(store=store, bandwidth={}, holders=_no_holders, fetch=_no_fetch)
    peers = PeerTable(3600)
    built: list[Executing] = []
    for index in range(executors):
        runtime = SleepyRuntime()
        key = nacl.signing.SigningKey(bytes([index + 1]) * 32)
        work = tmp_path / f"work{index}"
        work.mkdir()
        executor = Executor(store, {"python": runtime}, key, work)
        metrics = Metrics()
        holder: list[JobExecution] = []
        peer_id = executor.node

        def own(peer_id: str = peer_id, holder: list[JobExecution] = holder) -> Candidate:
            return executor_candidate(peer_id, lambda: holder[0] if holder else None)

        execution = JobExecution(exchange, executor, metrics, own, lambda cid: None, None, None, ceilings)
        holder.append(execution)
        hub[peer_id] = execution.handle
        peers.update({**to_announcement(own()), "addrs": [], "seq": 1, "time": 0})
        built.append(Executing(peer_id, execution, runtime, metrics))
    requester_id = "12D3KooWRequesterRequesterRequesterRequester"
    jobs = JobStore(tmp_path / "jobs")
    local_executor = Executor(store, {}, nacl.signing.SigningKey(bytes(32)), tmp_path)

    def own_requester() -> Candidate:
        return Candidate(requester_id, "eu", (), 2)  # runs nothing itself: every job goes to an executor

    local = JobExecution(exchange, local_executor, Metrics(), own_requester, lambda cid: None)
    hub[requester_id] = local.handle
    network: Any = LoopNet(requester_id, hub)
    service = JobService(jobs, network, exchange, peers, local, own_requester, None, policy)
    cluster = Cluster(store, hub, service, built, agent, jobs)
    cluster.closers += [jobs.close, store.close]
    return cluster


async def _no_holders(cid: CID) -> dict[str, int]:
    return {}


async def _no_fetch(cid: CID, providers: list[str] | None = None) -> None:
    raise AssertionError("everything is local in these tests: nothing is fetched")
