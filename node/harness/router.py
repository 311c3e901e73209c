"""The WAN router: one process in the router namespace forwarding IPv4 packets between sites.

This kernel has no netem, so latency and loss are made here. The router opens one TUN device per
site, moves it into that site's namespace (the site's only way out), and forwards every packet it
reads to the destination site's TUN after the pair's one-way delay, dropping it at the pair's loss
rate or when either end is cut off (a partition). Packets wait in one heap by due time. Rate
limits for uplinks are not here: tbf on each TUN shapes the site's uplink in the kernel. What
the kernel cannot shape (packets entering a site) is shaped here: a site's downlink rate
serializes the packets arriving for it, and a full downlink queue drops them. Per-link jitter
varies each packet's delay without reordering a link's packets (as a real path mostly does not
reorder, and TCP would read reordering as loss). A site behind NAT
(``nat.py``) has its packets translated as they leave it and as they arrive for it.

Control is line-delimited JSON on stdin, one answer line on stdout each:
``{"cut": ["ap"]}`` cuts those sites off (``[]`` heals), ``{"stats": true}`` returns counters,
``{"nat": "edge"}`` that site's live NAT mappings.
End of stdin stops the router; its TUN devices vanish with it, so a dead harness leaves no links.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
import math
import os
import random
import selectors
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from node.harness.nat import Nat

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_MAX_PACKET = 65536
_EARLY = 0.0005
_BURST = 64  # packets read from one TUN before looking at the others
DOWNLINK_QUEUE_S = 0.25  # how long a packet may wait for a shaped downlink before it is dropped


@dataclass
class Port:
    """One site's side of the router."""

    name: str
    fd: int
    cut: bool = False


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


class Router:
    """The forwarding loop; ``delay[i][j]`` is seconds one way from site i to j, ``loss[i][j]`` a fraction."""

    def __init__(
        self,
        ports: list[Port],
        delay: list[list[float]],
        loss: list[list[float]],
        seed: int,
        nats: dict[int, Nat] | None = None,
        downlink: list[float] | None = None,
        jitter: list[list[float]] | None = None,
    ) -> None:
        """``downlink[j]``: bytes per second into site j (0: unshaped); ``jitter[i][j]``: seconds
        each packet's delay may vary either way."""
        self.ports = ports
        self.nats = nats or {}
        self.downlink = downlink or [0.0] * len(ports)
        self.jitter = jitter or [[0.0] * len(ports) for _ in ports]
        self.link_due = [[0.0] * len(ports) for _ in ports]  # last due time per link: no reordering
        self.downlink_free = [0.0] * len(ports)  # when each site's downlink is free again
        self.shaped_dropped = 0
        self.delay = delay
        self.loss = loss
        self.random = random.Random(seed)
        self.queue: list[tuple[float, int, int, bytes, bool]] = []  # due, seq, target, packet, shaped
        self.seq = 0
        self.forwarded = 0
        self.dropped = 0
        self.cut_dropped = 0

    def take(self, source: int, packet: bytes, now: float) -> None:
        if len(packet) < 20 or packet[0] >> 4 != 4 or packet[16] != 10 or packet[17] != 77:
            return  # only IPv4 between sites; the kernel's IPv6 chatter goes nowhere
        target = packet[18] - 1
        if not 0 <= target < len(self.ports) or target == source:
            return
        nat = self.nats.get(source)
        if nat is not None:
            translated = nat.outbound(packet, now)
            if translated is None:
                return
            packet = translated
        if self.ports[source].cut or self.ports[target].cut:
            self.cut_dropped += 1
            return
        if self.loss[source][target] and self.random.random() < self.loss[source][target]:
            self.dropped += 1
            return
        due = now + self.delay[source][target]
        if self.jitter[source][target]:
            spread = self.jitter[source][target]
            due = max(now, due + self.random.uniform(-spread, spread), self.link_due[source][target])
            self.link_due[source][target] = due
        self.seq += 1
        heapq.heappush(self.queue, (due, self.seq, target, packet, False))

    def release(self, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            due, seq, target, packet, shaped = heapq.heappop(self.queue)
            rate = self.downlink[target]
            if rate and not shaped:  # arrived at the site's downlink: in arrival order, one at a time
                start = max(due, self.downlink_free[target])
                if start - due > DOWNLINK_QUEUE_S:
                    self.shaped_dropped += 1  # the downlink's queue is full: tail drop, as tbf does
                    continue
                self.downlink_free[target] = start + len(packet) / rate
                heapq.heappush(self.queue, (self.downlink_free[target], seq, target, packet, True))
                continue
            if self.ports[target].cut:
                self.cut_dropped += 1  # cut while in flight
                continue
            nat = self.nats.get(target)
            if nat is not None:  # filtered on arrival, as a home router does, not when sent
                translated = nat.inbound(packet, now)
                if translated is None:
                    continue
                packet = translated
            try:
                os.write(self.ports[target].fd, packet)
                self.forwarded += 1
            except OSError:
                self.dropped += 1  # the site's device is down or full: a lost packet, as on a WAN

    def command(self, line: str) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except ValueError:
            return {"error": "not JSON"}
        if not isinstance(message, dict):
            return {"error": "not an object"}
        if "cut" in message:
            names = message["cut"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                return {"error": "cut takes a list of site names"}
            unknown = set(names) - {p.name for p in self.ports}
            if unknown:
                return {"error": f"no site {sorted(unknown)}"}
            for port in self.ports:
                port.cut = port.name in names
            return {"cut": sorted(names)}
        if message.get("stats"):
            nat_dropped = sum(nat.dropped for nat in self.nats.values())
            return {
                "forwarded": self.forwarded,
                "dropped": self.dropped,
                "cut_dropped": self.cut_dropped,
                "nat_dropped": nat_dropped,
                "shaped_dropped": self.shaped_dropped,
            }
        if "nat" in message:
            names = [p.name for p in self.ports]
            site = message["nat"]
            if not isinstance(site, str) or site not in names or names.index(site) not in self.nats:
                return {"error": f"no NAT'd site {site!r}"}
            return {"mappings": self.nats[names.index(site)].table()}
        return {"error": "unknown command"}

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for index, port in enumerate(self.ports):
            selector.register(port.fd, selectors.EVENT_READ, index)
        os.set_blocking(sys.stdin.fileno(), True)
        selector.register(sys.stdin.fileno(), selectors.EVENT_READ, -1)
        pending = b""
        while True:
            now = time.monotonic()
            # epoll rounds a timeout up to whole milliseconds: round down instead, and release what is
            # due within _EARLY, so a hop is late by well under a millisecond, not up to one
            timeout = math.floor(max(0.0, self.queue[0][0] - now) * 1000) / 1000 if self.queue else None
            for key, _ in selector.select(timeout):
                if key.data == -1:
                    chunk = os.read(sys.stdin.fileno(), 4096)
                    if not chunk:
                        return
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        sys.stdout.write(json.dumps(self.command(line.decode(errors="replace"))) + "\n")
                        sys.stdout.flush()
                    continue
                now = time.monotonic()
                for _ in range(_BURST):
                    try:
                        packet = os.read(self.ports[key.data].fd, _MAX_PACKET)
                    except BlockingIOError:
                        break
                    self.take(key.data, packet, now)
            self.release(time.monotonic() + _EARLY)


def main() -> None:
    """Argument: a JSON spec {"sites": [[name, netns, device]], "delay": [[s]], "loss": [[p]], "seed": n,
    "nat": {site: {"inside": ip, "public": ip, "idle_s": s, "symmetric": bool}},
    "downlink": [bytes/s, 0 = unshaped], "jitter": [[s]]}.
    Prints "ready" once every TUN sits in its site's namespace."""
    spec = json.loads(sys.argv[1])
    with contextlib.suppress(OSError):  # the network must not wait for a CPU behind the nodes it carries
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    ports = []
    for name, netns, device in spec["sites"]:
        fd = open_tun(device)
        subprocess.run(["ip", "link", "set", device, "netns", netns], check=True)
        ports.append(Port(name, fd))
    names = [port.name for port in ports]
    nats = {
        names.index(site): Nat(nat["inside"], nat["public"], float(nat["idle_s"]), bool(nat.get("symmetric")))
        for site, nat in spec.get("nat", {}).items()
    }
    router = Router(
        ports, spec["delay"], spec["loss"], int(spec.get("seed", 0)), nats, spec.get("downlink"), spec.get("jitter")
    )
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    router.run()


if __name__ == "__main__":
    main()
