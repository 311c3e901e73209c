"""A WAN on one machine: sites as namespaces, the delay router between them, real nodes inside.

``Planet(topology, workdir)`` builds everything on ``up()`` and removes everything on ``down()``
(also after a failure half-way: each step is recorded before the next starts). Nodes are the
real ``mycel node start`` processes, run in their site's namespace with ``ip netns exec``; their
libp2p listens on the site's address (reached only through the router), their API on the site's
loopback, reached from the host through a portal at the same port.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from node.cluster import free_port, process_alive, wait_answering, wait_for_peers
from node.harness import netns
from node.harness.portal import Portal
from node.harness.topology import SUBNET, Topology
from node.identity import load_or_create

_RUNS = itertools.count()
TBF_QUEUE_S = 0.25  # how much a full uplink may queue before tbf drops: above the longest RTT


class PlanetError(netns.NetnsError):
    """The harness could not build, change or tear down its WAN."""


@dataclass
class PlanetNode:
    """One node process in a site."""

    name: str
    site: str
    region: str
    peer_id: str
    data_dir: str
    listen: str
    api_url: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def multiaddr(self) -> str:
        return f"{self.listen}/p2p/{self.peer_id}"


class Planet:
    """Build with ``up()`` (or ``with Planet(...) as planet``), add nodes with ``start_node``."""

    def __init__(self, topology: Topology, workdir: Path, seed: int = 0) -> None:
        self.topology = topology
        self.workdir = workdir
        self.seed = seed
        self.prefix = f"{netns.PREFIX}{os.getpid()}-{next(_RUNS)}-"
        self.namespaces: list[str] = []
        self.router: subprocess.Popen[str] | None = None
        self.portal: Portal | None = None
        self.nodes: list[PlanetNode] = []

    def netns_of(self, site: str) -> str:
        self.topology.site(site)
        return f"{self.prefix}{site}"

    def device_of(self, site: str) -> str:
        return f"wan{self.topology.index(site)}"

    def __enter__(self) -> Planet:
        self.up()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.down()

    def up(self) -> None:
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        router_ns = f"{self.prefix}router"
        for name in [router_ns] + [self.netns_of(site.name) for site in self.topology.sites]:
            self.namespaces.append(name)
            netns.create(name)
        sites = self.topology.sites
        spec = {
            "sites": [[s.name, self.netns_of(s.name), self.device_of(s.name)] for s in sites],
            "delay": [[self.topology.rtt_ms(a.name, b.name) / 2000 for b in sites] for a in sites],
            "loss": [[self.topology.loss(a.name, b.name) for b in sites] for a in sites],
            "seed": self.seed,
            "downlink": [s.downlink_mbit * 1e6 / 8 for s in sites],
            "jitter": [[self.topology.jitter_ms(a.name, b.name) / 1000 for b in sites] for a in sites],
            "nat": {
                s.name: {
                    "inside": self.topology.address(s.name),
                    "public": self.topology.public_address(s.name),
                    "idle_s": s.nat_idle_s,
                    "symmetric": s.nat_symmetric,
                }
                for s in sites
                if s.nat
            },
        }
        command = ["ip", "netns", "exec", router_ns, sys.executable, "-m", "node.harness.router", json.dumps(spec)]
        log = open(self.workdir / "router.log", "ab")  # noqa: SIM115 - handed to the child
        self.router = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        if self._answer(20.0) != "ready":
            raise PlanetError(f"the WAN router did not start; see {self.workdir / 'router.log'}")
        for site in sites:
            name, device = self.netns_of(site.name), self.device_of(site.name)
            prefix = 24 if site.nat else 16  # behind NAT: a private /24, and a route out to the WAN
            netns.ip("addr", "add", f"{self.topology.address(site.name)}/{prefix}", "dev", device, netns=name)
            netns.ip("link", "set", device, "mtu", str(self.topology.mtu), "txqueuelen", "4096", "up", netns=name)
            if site.nat:
                netns.ip("route", "add", str(SUBNET), "dev", device, netns=name)
            rate = site.uplink_mbit * 1e6 / 8  # bytes per second
            burst = max(2 * self.topology.mtu, int(rate * 0.004))
            limit = max(4 * self.topology.mtu, int(rate * TBF_QUEUE_S))
            netns.tc(name, "qdisc", "add", "dev", device, "root", "tbf", "rate", f"{int(rate * 8)}bit",
                     "burst", str(burst), "limit", str(limit))  # fmt: skip
        self.portal = Portal()

    def _answer(self, timeout: float) -> str:
        assert self.router is not None and self.router.stdout is not None
        ready, _, _ = select.select([self.router.stdout], [], [], timeout)
        return self.router.stdout.readline().strip() if ready else ""

    def control(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one command to the router and return its answer."""
        if self.router is None or self.router.stdin is None or self.router.poll() is not None:
            raise PlanetError("the WAN router is not running")
        self.router.stdin.write(json.dumps(message) + "\n")
        self.router.stdin.flush()
        answer: dict[str, Any] = json.loads(self._answer(10.0) or "{}")
        if "error" in answer or not answer:
            raise PlanetError(f"the WAN router refused {message}: {answer.get('error', 'no answer')}")
        return answer

    def partition(self, *sites: str) -> None:
        """Cut these sites off: the router drops every packet from or to them."""
        for site in sites:
            self.topology.site(site)
        self.control({"cut": list(sites)})

    def heal(self) -> None:
        self.control({"cut": []})

    def stats(self) -> dict[str, Any]:
        return self.control({"stats": True})

    def nat_table(self, site: str) -> list[dict[str, Any]]:
        """The live NAT mappings of a site behind NAT (inside, public, remotes allowed in)."""
        mappings: list[dict[str, Any]] = self.control({"nat": site})["mappings"]
        return mappings

    def start_node(
        self, site: str, name: str | None = None, env: dict[str, str] | None = None, region: str | None = None
    ) -> PlanetNode:
        """Start one node in ``site`` (see ``start_nodes``)."""
        return self.start_nodes([site], env, [name] if name else None, [region] if region else None)[0]

    def start_nodes(
        self,
        sites: list[str],
        env: dict[str, str] | None = None,
        names: list[str] | None = None,
        regions: list[str] | None = None,
    ) -> list[PlanetNode]:
        """Start one node per entry of ``sites`` at once, each bootstrapping from every node of the
        planet (those not listening yet are re-dialed by the node); waits for every API. A node's
        region (for placement) is its site's metro unless ``regions`` says otherwise."""
        if self.portal is None:
            raise PlanetError("the planet is not up")
        started = []
        for index, site in enumerate(sites):
            name = names[index] if names else f"{site}{sum(1 for n in self.nodes if n.site == site)}"
            data_dir = self.workdir / name
            node = PlanetNode(
                name, site, regions[index] if regions else self.topology.site(site).metro,
                load_or_create(data_dir).peer_id, str(data_dir),
                f"/ip4/{self.topology.address(site)}/tcp/{free_port()}", f"http://127.0.0.1:{free_port()}",
            )  # fmt: skip
            self.portal.open(self.netns_of(site), int(node.api_url.rsplit(":", 1)[1]))
            self.nodes.append(node)
            started.append(node)
        for node in started:
            node.proc = self._spawn(node, [n.multiaddr for n in self.nodes if n is not node], env or {})
        for node in started:
            assert node.proc is not None
            wait_answering(node.proc, node.api_url, Path(node.data_dir) / "node.log", timeout=120)
        return started

    def _spawn(self, node: PlanetNode, bootstrap: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        args = ["ip", "netns", "exec", self.netns_of(node.site), sys.executable, "-m", "node.cli.main"]
        args += ["node", "start", "--data-dir", node.data_dir, "--listen", node.listen]
        args += ["--api", node.api_url.removeprefix("http://"), "--region", node.region, "--no-mdns"]
        for address in bootstrap:
            args += ["--bootstrap", address]
        environment = dict(os.environ, **env)
        environment.pop("MYCEL_DATA_DIR", None)
        with open(Path(node.data_dir) / "node.log", "ab") as log:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment)

    def kill(self, node: PlanetNode) -> None:
        """SIGKILL, as a crash: no goodbye reaches the peers."""
        if node.proc is None:
            raise PlanetError(f"node {node.name} was never started")
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGKILL)
        node.proc.wait(10)

    def wait_mesh(self, timeout: float = 60.0) -> None:
        """Until every running node sees every other running node alive."""
        running = [n for n in self.nodes if n.running()]
        for node in running:
            wait_for_peers(node.api_url, len(running) - 1, timeout)

    def down(self) -> None:
        """Stop nodes, the router and the portal; delete every namespace. Never raises half-way."""
        live = [node.proc for node in self.nodes if node.proc is not None and node.proc.poll() is None]
        for proc in live:  # all at once: each takes seconds to shut down
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        if self.router is not None:
            with contextlib.suppress(Exception):
                assert self.router.stdin is not None
                self.router.stdin.close()
            with contextlib.suppress(Exception):
                self.router.wait(5)
            with contextlib.suppress(Exception):
                self.router.kill()
                self.router.wait(5)
            self.router = None
        if self.portal is not None:
            self.portal.close()
            self.portal = None
        for name in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                netns.destroy(name)
        self.namespaces = []

    def leftovers(self) -> list[str]:
        """What of this run still exists (namespaces, live processes); empty after ``down()``."""
        found = netns.ours(self.prefix)
        found += [f"pid {n.pid} ({n.name})" for n in self.nodes if n.pid and process_alive(n.pid)]
        if self.router is not None and self.router.poll() is None:
            found.append(f"router pid {self.router.pid}")
        return found
