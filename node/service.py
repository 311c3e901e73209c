"""One node: wires identity, block store, libp2p, block exchange, announcements and the API.

Start order is store -> network -> API -> announcements; stop is the reverse, so
nothing can reach a closed store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections import OrderedDict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aiohttp import web

from agents.environment import AgentEnvironment, agent_environment
from agents.executor import Executor
from agents.input_cache import InputCache
from agents.reaper import Reaper
from agents.runtime.lazy_wasm import LazyWasmRuntime
from agents.runtime.python import PythonRuntime
from agents.wheelenv import WheelEnvironments
from node import announce
from node.announce import AnnouncementValidator, PeerTable
from node.api.app import build_app
from node.bulk.client import BulkClient
from node.bulk.server import BulkServer
from node.bulk.ticket import PROTOCOL as CAR_TICKET_PROTOCOL
from node.config import NodeConfig
from node.errors import ConfigError
from node.exchange import BlockExchange
from node.identity import load_or_create
from node.ipfs.bitswap import Bitswap
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from node.privacy.gate import ServingGate
from node.privacy.registry import PrivacyRegistry
from node.privacy.running import RunGate
from node.scheduler import holdings
from node.scheduler.candidates import Candidate, to_announcement
from node.scheduler.dispatcher import JobService
from node.scheduler.execution import JobExecution
from node.scheduler.jobstore import JobStore
from node.scheduler.limits import Ceilings
from node.scheduler.operator import node_delegation
from node.scheduler.protocol import MAX_REQUEST as MAX_JOB_REQUEST
from node.scheduler.protocol import PROTOCOLS as JOB_PROTOCOLS
from node.scheduler.protocol import SESSION_PROTOCOL as JOB_SESSION_PROTOCOL
from node.scheduler.reputation import ReputationPolicy
from node.settlement.pay import PROTOCOL as PAY_PROTOCOL
from node.settlement.pay import PaymentHandler
from node.settlement.service import NodeSettlement
from node.streams.policy import PolicyGate
from node.streams.protocol import PROTOCOL as STREAM_PROTOCOL
from node.streams.service import StreamService
from node.streams.store import StreamStore
from node.triggers.protocol import PROTOCOL as TRIGGER_PROTOCOL
from node.triggers.service import TriggerService
from node.triggers.store import TriggerStore
from storage.blockstore import BlockStore
from storage.cid import CID

log = logging.getLogger("mycelnet.node")

API_VERSION = "v1"
RUNTIMES = ("wasm", "python")
STATE_FILE = "node.json"
HEADS_MIN_INTERVAL = 2.0  # seconds between announcements sent only because a stream head moved
ANNOUNCE_GAP = 1.0  # seconds between two announcements at least: gossip rate-limits each peer, and a
# 5-node mesh slows down past ~30 messages/s in all
REPROVIDE_SECONDS = 12 * 3600  # provider records expire in 24 h: a root provided since then is not provided again
PROVIDED_REMEMBERED = 8192  # roots whose last provide is remembered (the oldest forgotten first)


def package_version() -> str:
    try:
        return version("mycelnet")
    except PackageNotFoundError:
        return "0.0.0"


class NodeService:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.version = package_version()
        self.data_dir = config.data_dir
        self.identity = load_or_create(self.data_dir)
        self.operator = node_delegation(str(config.get("node", "operator_key")), self.data_dir, self.identity.peer_id)
        self.metrics = Metrics()
        self.cpu_cores = int(config.get("capacity", "cpu_cores")) or (os.cpu_count() or 1)  # 0 = detect
        quota = int(config.get("storage", "quota_bytes")) or None
        self.store = BlockStore(
            self.data_dir / "blocks", quota=quota, verify_on_get=bool(config.get("storage", "verify_on_get"))
        )
        self.scratch_dir = self.data_dir / "tmp"
        self.scratch_dir.mkdir(exist_ok=True)
        self.network = P2PNetwork(
            self.identity,
            config.listen,
            config.bootstrap,
            mdns=bool(config.get("node", "mdns")),
            inbound=config.inbound_limits,
            connections=config.connection_limits,
            addresses=lambda peer: self.peers.addrs_of(peer),  # dial on demand where it announced
            traversal=config.traversal_settings,
        )
        self.exchange = BlockExchange(self.store, self.network, self.metrics)
        timeout, interval = float(config.get("node", "peer_timeout")), float(config.get("node", "announce_interval"))
        self.peers = PeerTable(timeout, interval)
        self.privacy = PrivacyRegistry(self.data_dir / "privacy")
        self.gate = ServingGate(self.privacy, self.peers.region_of, self.metrics)
        self.exchange = BlockExchange(self.store, self.network, self.metrics, self.gate)
        self.bitswap = Bitswap(self.store, self.network, self.metrics, self.gate)  # IPFS peers (Helia, Kubo)
        self.exchange.fallback = self.bitswap.client
        self.bulk_server = BulkServer(self.store, self.gate, self.identity, self.metrics, self.data_dir / "bulk")
        self.network.handle(CAR_TICKET_PROTOCOL, self.bulk_server.ticket)
        self.bulk_client = BulkClient(self.network, self.peers.car_url_of, self.metrics, self.identity)
        if bool(config.get("bulk", "enabled")):
            self.exchange.bulk = self.bulk_client  # whole DAGs as one CAR where a provider offers it
        self.announcements = AnnouncementValidator(self.metrics, self.identity.peer_id)
        self.network.subscribe(announce.TOPIC, self.announcements, self._on_announcement)
        self.network.on_peers_changed(self._peers_changed)
        self.jobs = JobStore(self.data_dir / "jobs")
        self.reputation_policy = ReputationPolicy(  # a bad setting stops the node here, not mid-job
            float(config.get("node", "reputation_half_life")), float(config.get("node", "reputation_exclude_at"))
        )
        for job_protocol in JOB_PROTOCOLS:  # every version this release knows: an older requester is served
            self.network.handle(job_protocol, self._on_job_message)
        self.network.handle_session(JOB_SESSION_PROTOCOL, self._on_job_message, MAX_JOB_REQUEST)
        settles = bool(config.get("chain", "rpc_url"))
        self.settlement = NodeSettlement(config, self.identity, self.metrics) if settles else None
        self.payments = PaymentHandler(self.settlement)
        self.network.handle(PAY_PROTOCOL, self.payments.handle)
        stream_store = StreamStore(self.data_dir / "streams")
        self.streams = StreamService(
            stream_store,
            self.network,
            self.metrics,
            lambda: [record.announcement for record in self.peers.alive()],
            self.store,  # retention's snapshots (node.streams.compaction)
            float(config.get("streams", "poll_seconds")),
            PolicyGate(stream_store, self.peers.region_of, lambda: self.config.region),  # writers' stream policies
        )
        self.gate.also = self.streams.policy.may_send_snapshot  # a region-bound stream's snapshots stay in it
        self.streams.on_head_moved = self._head_moved
        self.network.handle(STREAM_PROTOCOL, self.streams.serve)
        self.network.handle(TRIGGER_PROTOCOL, self._on_trigger_message)
        self.execution: JobExecution | None = None
        self.job_service: JobService | None = None
        self.python_runtime: PythonRuntime | None = None
        self.warm_python: PythonRuntime | None = None  # the triggers' runtime: forked from a warm worker
        # finished workspaces (triggers' and jobs'), removed after their commit or answer, not before
        self.reaper = Reaper()
        self.triggers: TriggerService | None = None
        self.agent_env: AgentEnvironment | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._provides: set[asyncio.Task[None]] = set()
        self._provided: OrderedDict[CID, float] = OrderedDict()  # root -> when (monotonic) it was last provided
        self._seq = 0
        self._announce_soon = asyncio.Event()  # announce at the next turn (the load changed)
        self._content_changed = False  # a root was stored: announce if the summary differs from the last one
        self._wake = asyncio.Event()  # the announce loop looks again now
        self._held = holdings.HoldingsCache(
            lambda: holdings.summarize(self.store.pins(), self._withheld),
            lambda: (self.store.pin_writes, self.privacy.locks),
        )
        self._announced_load = 0  # the running_jobs of the last announcement
        self.sandbox_layers: dict[str, str] = {}
        self.api_url = ""
        host, _ = config.api_host_port
        if host not in ("127.0.0.1", "localhost", "::1") and not config.get("api", "token"):
            raise ConfigError(f"api.listen binds {host}, beyond loopback: set api.token so writes need a bearer token")

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self.python_runtime = await asyncio.to_thread(PythonRuntime)
        self.agent_env = await asyncio.to_thread(agent_environment)  # package metadata: read once, off the loop
        self.sandbox_layers = self.python_runtime.layers
        runtimes = {"wasm": LazyWasmRuntime(self.data_dir / "wasm-cache"), "python": self.python_runtime}
        cache_mib = int(self.config.get("jobs", "wheel_cache_mib"))
        wheel_envs = WheelEnvironments(self.data_dir / "wheel-envs", cache_mib << 20)
        input_cache = InputCache(
            self.data_dir / "cache" / "inputs", self.store, int(self.config.get("jobs", "input_cache_mib")) << 20
        )
        work = self.data_dir / "work"
        # a job's workspace goes in the reaper's thread: its rmdirs (milliseconds each on a disk with
        # online discard) sat between the agent's exit and the answer; sweep_work_dir covers a crash
        executor = Executor(self.store, runtimes, self.identity.signing_key, work, wheel_envs, input_cache,  # type: ignore[arg-type]
                            reaper=self.reaper)  # fmt: skip
        (self.data_dir / "work").mkdir(exist_ok=True)
        self.warm_python = PythonRuntime(self.python_runtime.layers, warm=True)
        warm = {**runtimes, "python": self.warm_python}
        trigger_executor = Executor(self.store, warm, self.identity.signing_key, self.data_dir / "work", wheel_envs,  # type: ignore[arg-type]
                                    reaper=self.reaper)  # fmt: skip
        self.triggers = TriggerService(TriggerStore(self.data_dir / "triggers"), self.streams, self.store,
                                       trigger_executor, self.metrics, self.cpu_cores, self.network,
                                       self.exchange, lambda: self.config.region)  # fmt: skip
        await asyncio.to_thread(executor.sweep_work_dir)  # workspaces of a node that was killed mid-job
        if self.settlement is not None:
            await self.settlement.start()
        self.execution = JobExecution(
            self.exchange,
            executor,
            self.metrics,
            self._own,
            self.provide,
            self.settlement,
            self.jobs,
            Ceilings.from_capacity(self.config.raw["capacity"]),
            leases=self.config.lease_policy,
            privacy=RunGate(self.privacy, self.identity.peer_id, lambda: self.config.region, self.metrics),
            queue_slots=int(self.config.get("capacity", "queue_jobs")),
        )
        self.execution.on_change = self._load_changed
        self.job_service = JobService(
            self.jobs,
            self.network,
            self.exchange,
            self.peers,
            self.execution,
            self._own,
            self.settlement.is_bound if self.settlement else None,
            metrics=self.metrics,
            reputation=self.reputation_policy,
            queue_timeout=float(self.config.get("jobs", "queue_timeout_seconds")),
        )
        if self.settlement is not None:
            self.job_service.decider.stake_of = self.settlement.stake_of
        await self.network.start()
        if bool(self.config.get("bulk", "enabled")):
            await self.bulk_server.start(*_bulk_host(self.config.listen))
        await self.streams.start()
        await self.triggers.start()
        host, port = self.config.api_host_port
        self._runner = web.AppRunner(build_app(self), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.api_url = f"http://{bound[0]}:{bound[1]}"
        self._tasks.append(asyncio.create_task(self._announce_loop()))
        self._tasks.append(asyncio.create_task(self._reprovide_loop()))
        self._tasks.append(asyncio.create_task(self._report_sandbox()))
        resumed = self.job_service.resume_unfinished()
        if resumed:
            log.info("resuming %d unfinished job(s)", resumed)
        self._write_state()
        log.info("node %s up: api %s", self.identity.peer_id, self.api_url)

    async def stop(self) -> None:
        if self.job_service is not None:
            await self.job_service.stop()
        if self.execution is not None:
            await self.execution.stop()
        for task in [*self._tasks, *self._provides]:
            task.cancel()
        for task in [*self._tasks, *self._provides]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        if self.triggers is not None:
            await self.triggers.stop()
        await asyncio.to_thread(self.reaper.close)  # no job runs now: what it still holds goes before we exit
        await self.streams.stop()
        if self.settlement is not None:
            await self.settlement.stop()
        await self.network.stop()
        await self.bulk_server.stop()
        await self.bitswap.close()
        await self.bulk_client.close()
        self.exchange.close()
        if self.python_runtime is not None:
            self.python_runtime.close()
        if self.warm_python is not None:
            self.warm_python.close()
        if self.triggers is not None:
            self.triggers.store.close()
        self.jobs.close()
        self.privacy.close()
        self.streams.store.close()
        self.store.close()
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / STATE_FILE).unlink()

    # -- behaviour -------------------------------------------------------------------
    async def describe(self) -> dict[str, Any]:
        return {
            "peer_id": self.identity.peer_id,
            "version": self.version,
            "api_version": API_VERSION,
            "addrs": await self.network.addrs(),
            "nat": await self.network.traversal(),  # reachability, relayed addresses, direct/relayed per peer
            "region": self.config.region,
            "api_url": self.api_url,
            "bulk_url": self.bulk_server.http_url,  # the bulk CAR path peers use (libp2p-PeerID auth or a ticket)
            "runtimes": list(RUNTIMES),
            "sandbox": self.sandbox_layers,
            "chain": self.settlement.summary() if self.settlement else None,
        }

    async def ensure_local(self, root: CID) -> None:
        """Fetch the DAG under ``root`` from peers unless every block is already here (walked off the loop)."""
        if not await asyncio.to_thread(self.store.missing_blocks, root):  # includes the root itself when absent
            return
        await self.exchange.fetch(root)
        self.provide(root)

    async def _report_sandbox(self) -> None:
        """Say which sandbox layers this host allows (detected when the runtime started)."""
        active = [name for name, state in self.sandbox_layers.items() if state.startswith("on")]
        log.info("python sandbox layers active: %s", ", ".join(active) or "none")
        for name, state in self.sandbox_layers.items():
            if not state.startswith("on"):
                log.warning("python sandbox layer %s is %s", name, state)

    async def _on_trigger_message(self, peer: str, request: bytes) -> list[bytes]:
        if self.triggers is None:
            return []
        return await self.triggers.handle_progress(peer, request)

    async def _on_job_message(self, peer: str, request: bytes) -> list[bytes]:
        if self.execution is None:
            return []
        return await self.execution.handle(peer, request)

    def _own(self) -> Candidate:
        capacity = self.config.raw["capacity"]
        return Candidate(
            peer_id=self.identity.peer_id,
            region=self.config.region,
            runtimes=RUNTIMES,
            cpu_cores=self.cpu_cores,
            running_jobs=self.execution.occupancy if self.execution else 0,
            queue_slots=self.execution.queue_slots if self.execution else 0,
            gpus=int(capacity["gpus"]),
            price=int(capacity["price_per_cpu_second"]),
            chain_address=self.settlement.address if self.settlement else "",
            memory_mib=int(capacity["memory_mib"]) or _memory_mib(),
            operator=self.operator.operator if self.operator else "",
            operator_sig=self.operator.sig if self.operator else b"",
            env=self.agent_env.hash if self.agent_env is not None else "",
        )

    def provide(self, root: CID) -> None:
        """Put a provider record for ``root`` on the DHT, in the background, and announce soon if
        the content summary changed (it lists the root, so placement finds it with no lookup).

        A root provided within REPROVIDE_SECONDS (or being provided now) is not provided again:
        a DHT provide is a lookup plus a message to each of the closest peers, and a job that
        returns the same result as the last one would otherwise cost every node that per run."""
        self._content_changed = True
        self._wake.set()
        now = time.monotonic()
        last = self._provided.get(root)
        if last is not None and now - last < REPROVIDE_SECONDS:
            return
        self._remember_provided(root, now)
        task = asyncio.create_task(self._provide(root))
        self._provides.add(task)
        task.add_done_callback(self._provides.discard)

    def _remember_provided(self, root: CID, at: float) -> None:
        self._provided[root] = at
        self._provided.move_to_end(root)
        while len(self._provided) > PROVIDED_REMEMBERED:
            self._provided.popitem(last=False)

    async def _provide(self, root: CID) -> None:
        provided = False
        try:
            if await asyncio.to_thread(self._withheld, root):
                return  # a private root is never announced: its holders are found by the policy, not the DHT
            provided = await self.network.provide(str(root))
            if provided:
                self.metrics.inc("dht_provides_total")
        except Exception as exc:
            log.info("DHT provide of %s failed: %s", root, exc)
        finally:
            if provided:
                self._remember_provided(root, time.monotonic())
            else:  # not on the DHT: a later store of it tries again
                self._provided.pop(root, None)

    async def _reprovide_loop(self) -> None:
        """Provide every pinned root at start, then every 12 hours (records expire in 24 h)."""
        while True:
            for pin in await asyncio.to_thread(self.store.pins):
                await self._provide(pin.cid)
            await asyncio.sleep(12 * 3600)

    def refresh_gauges(self, connected: int) -> None:
        stats = self.store.stats()
        self.metrics.set("peers_connected", connected)
        self.metrics.set("peers_alive", len(self.peers.alive()))
        self.metrics.set("jobs_running", self.execution.running if self.execution else 0)
        self.metrics.set("jobs_in_sandbox", self.execution.in_sandbox if self.execution else 0)
        self.metrics.set("store_blocks", stats.blocks)
        self.metrics.set("store_bytes", stats.bytes)
        bytes_in, bytes_out = self.network.traffic()
        self.metrics.set("p2p_bytes_in", bytes_in)
        self.metrics.set("p2p_bytes_out", bytes_out)

    async def _on_announcement(self, origin: str, data: bytes) -> None:
        """An announcement gossip delivered: the validator verified it already (verified once)."""
        payload = self.announcements.take(origin, data)
        if payload is None or origin == self.identity.peer_id:
            return  # gossip delivers only what the validator accepted; our own we know
        self.peers.update(payload)
        if self.job_service is not None:  # its load may have room now: queued jobs look again
            self.job_service.wake()

    def _head_moved(self) -> None:
        """A stream head moved: the announcement lists the heads (sent within HEADS_MIN_INTERVAL)."""
        self._wake.set()

    def _peers_changed(self) -> None:
        """A connection opened or closed: the announce loop compares the connected set again."""
        self._wake.set()

    def _load_changed(self) -> None:
        """A run started, ended or reserved its place: let this node's queued jobs look again,
        and say so at once when placement elsewhere would see it (others' queued jobs wait on
        it). Below its core count a node's load changes no rule and no score (a free core is a
        free core), so those changes wait for the heartbeat: a short job then costs the
        cluster no gossip, and each node no signature check, per job."""
        occupancy = self.execution.occupancy if self.execution else 0
        if max(occupancy, self._announced_load) >= self.cpu_cores:
            self._announce_soon.set()
            self._wake.set()
        if self.job_service is not None:
            self.job_service.wake()

    def _withheld(self, root: CID) -> bool:
        """A root never announced (summary, DHT): a private dataset's, or a snapshot of a stream whose
        writer bound it to regions (blocking: LMDB reads)."""
        return self.privacy.is_private(root) or self.streams.policy.withholds(root)

    def _holdings(self, fresh: bool = False) -> holdings.Holdings:
        """This node's content summary for its announcement (rebuilt when the pins changed: off the loop)."""
        return self._held.current(fresh)

    def _announcement(self, addrs: list[str], held: holdings.Holdings = holdings.NOTHING) -> bytes:
        self._seq = max(self._seq + 1, time.time_ns() // 1_000_000)
        own = self._own()
        self._announced_load = own.running_jobs
        payload = {
            **to_announcement(own),
            "addrs": addrs,
            "api": API_VERSION,
            "seq": self._seq,
            "time": int(time.time()),
        }
        heads = self.streams.heads()
        if heads:
            payload["streams"] = heads
        if self.bulk_server.http_url:
            payload["car"] = self.bulk_server.http_url
        if held.roots or held.bloom is not None:
            signed = announce.sign(self.identity, {**payload, "held": held.to_announcement()})
            if len(signed) <= announce.MAX_SIZE:
                return signed  # else (many addresses) peers find its content as without a summary
        return announce.sign(self.identity, payload)

    async def _announce_loop(self) -> None:
        """Announce at start, when the load, the set of connected peers or the content summary
        changes, and as a slow heartbeat. Load changes coalesce (at most one announcement per
        ANNOUNCE_GAP: gossip drops a peer's messages past a rate); a stored root announces only
        if the summary it is in changed (a job whose result is already held costs no gossip).
        Nothing is polled: a connection opening or closing, a head moving, a load change and a
        stored root wake the loop, and it sleeps otherwise until the heartbeat is due (or, for a
        head that moved within HEADS_MIN_INTERVAL of the last announcement, until that passed).
        The heartbeat's period stretches with the cluster's size (:func:`announce.heartbeat`)."""
        last_peers: frozenset[str] | None = None
        last_heads: dict[str, Any] = {}
        last_held: holdings.Holdings | None = None
        next_due = last_sent = 0.0
        while True:
            self._wake.clear()
            peers = frozenset(await self.network.peers())  # the set: a swap of one peer for another counts
            now = time.monotonic()
            heads = self.streams.heads()
            moved = heads != last_heads and now - last_sent >= HEADS_MIN_INTERVAL  # a stream grew: say so, rate-bound
            due = now >= next_due or peers != last_peers or moved or self._announce_soon.is_set()
            held = last_held
            if due or self._content_changed:
                self._content_changed = False
                try:  # the heartbeat rescans the pins (another process may have pinned); else the cache
                    held = await asyncio.to_thread(self._holdings, now >= next_due)
                except Exception as exc:
                    log.warning("content summary failed: %s", exc)
            if due or held != last_held:
                self._announce_soon.clear()
                try:
                    summary = held if held is not None else holdings.NOTHING
                    await self.network.publish(announce.TOPIC, self._announcement(await self.network.addrs(), summary))
                    next_due = now + self.peers.heartbeat()
                    last_peers, last_heads, last_sent, last_held = peers, heads, now, held
                except Exception as exc:
                    log.warning("announcement failed: %s", exc)
                await asyncio.sleep(ANNOUNCE_GAP)
            wake_at = next_due
            if heads != last_heads:  # moved too soon after the last announcement: say so when allowed
                wake_at = min(wake_at, last_sent + HEADS_MIN_INTERVAL)
            wait = max(0.0, wake_at - time.monotonic())
            if self._wake.is_set() or self._announce_soon.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "peer_id": self.identity.peer_id, "api_url": self.api_url}
        (self.data_dir / STATE_FILE).write_text(json.dumps(state))


def _bulk_host(listen: list[str]) -> tuple[str, str]:
    """(bind, advertised) host of the bulk CAR listeners: the first IPv4 libp2p listen address's."""
    for address in listen:
        parts = address.split("/")
        if len(parts) > 2 and parts[1] == "ip4":
            return parts[2], parts[2] if parts[2] != "0.0.0.0" else _outward_ip4()
    return "127.0.0.1", "127.0.0.1"


def _outward_ip4() -> str:
    """This host's address toward the network (no packet is sent: a UDP connect only picks a route)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        return str(probe.getsockname()[0])
    return "127.0.0.1"


def _memory_mib() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 20))
    except (ValueError, OSError):
        return 0


def read_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((data_dir / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data
