"""``mycel node start``: run one node until SIGINT/SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from node.config import NodeConfig
from node.service import NodeService

# py_ecc (imported with web3) raises the recursion limit to 100000 at import; with it, one deeply
# nested input (a JSON body, a CBOR block) recurses past the C stack and kills the process with
# SIGSEGV instead of raising RecursionError. Everything the node parses stays far below this.
RECURSION_LIMIT = 1000


def sane_recursion_limit() -> None:
    """Put the recursion limit back to Python's default once every heavy import is done."""
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)


async def run_node(config: NodeConfig) -> None:
    service = NodeService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    sane_recursion_limit()  # again: starting may import more (the chain client)
    print(f"mycel node {service.identity.peer_id} api {service.api_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()


def start(config: NodeConfig, log_level: str = "INFO") -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("libp2p", "multiaddr", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sane_recursion_limit()
    asyncio.run(run_node(config))
