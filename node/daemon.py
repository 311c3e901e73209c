"""``mycel node start``: run one node until SIGINT/SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from node.config import NodeConfig
from node.service import NodeService

# How long a thread may keep the GIL while another waits for it. CPython's 5 ms default
# means every wake-up of the event loop can wait 5 ms behind a job's staging thread or
# the libp2p thread, and one API request needs several wake-ups; 1 ms keeps the loop
# responsive under that load (measured in bench/eventloop.py) for a little more switching.
GIL_SWITCH_INTERVAL = 0.001


async def run_node(config: NodeConfig) -> None:
    service = NodeService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    print(f"mycel node {service.identity.peer_id} api {service.api_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()


def start(config: NodeConfig, log_level: str = "INFO") -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("libp2p", "multiaddr", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    asyncio.run(run_node(config))
