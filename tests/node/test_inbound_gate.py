"""The inbound gate's accounting on a real in-process libp2p host (tight limits, raw sockets).

The process-level flood test shows a peer still joins; this one reads the gate's counters
to show which bound did it: the per-IP refusal, the eviction of the oldest pending
handshake, the timeout, and that nothing stays counted once connections are gone.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import nacl.signing
import pytest

from node.identity import NodeIdentity
from node.p2p.inbound import InboundLimits
from node.p2p.network import P2PNetwork
from tests.support import REPO_ROOT

LIMITS = InboundLimits(handshake_timeout=0.5, max_pending=4, max_pending_per_ip=2)


def _network(limits: InboundLimits | None = None) -> P2PNetwork:
    return P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"], inbound=limits)


@pytest.fixture
async def target() -> AsyncIterator[tuple[P2PNetwork, str, int]]:
    network = _network(LIMITS)
    await network.start()
    address = (await network.addrs())[0]
    try:
        yield network, address, int(address.split("/tcp/")[1].split("/")[0])
    finally:
        await network.stop()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _silent(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def test_per_ip_bound_refuses_and_the_total_bound_evicts_the_oldest(target: tuple[P2PNetwork, str, int]) -> None:
    network, _address, port = target
    counters = network.inbound_counters()
    sockets = [await _silent(port, "127.0.0.2") for _ in range(3)]
    await _until(lambda: counters.refused_per_ip == 1 and counters.pending == 2)  # the third from that IP
    sockets += [await _silent(port, f"127.0.0.{3 + i}") for i in range(3)]  # 5 pending wanted, 4 allowed
    await _until(lambda: counters.evicted == 1 and counters.pending == 4)
    await _until(lambda: counters.pending == 0)  # the rest ran out of handshake time
    assert (counters.timed_out, counters.upgraded) == (4, 0)
    for reader, writer in sockets:  # the node closed every one (after its multistream header, if admitted)
        assert (await asyncio.wait_for(reader.read(), 2)) in (b"", b"\x13/multistream/1.0.0\n")
        writer.close()


# three peers in a process of their own, which connect, ping and exit: exiting closes their sockets
# for certain (an in-process P2PNetwork.stop leaves its dialled sockets open until collected)
_PEERS = """
import asyncio, sys
import nacl.signing
from node.identity import NodeIdentity
from node.p2p.network import P2PNetwork
from tests.support import REPO_ROOT

async def main():
    for _ in range(3):
        peer = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
        await peer.start()
        await peer.ping(await peer.connect(sys.argv[1]))
    print("pinged", flush=True)

asyncio.run(main())
"""


async def test_peers_that_leave_free_their_handlers(target: tuple[P2PNetwork, str, int]) -> None:
    network, address, _port = target
    counters = network.inbound_counters()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PEERS, address, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0 and out.strip() == b"pinged"
    await _until(lambda: counters.upgraded == 3 and counters.pending == 0)
    await _until(lambda: counters.closed == 3)  # py-libp2p's own handler held each until the swarm stopped
    await _until_async(lambda: network.peers(), [])


async def _until_async(read: Callable[[], Awaitable[object]], expected: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := await read()) != expected:
        assert time.monotonic() < deadline, f"still {value!r}"
        await asyncio.sleep(0.05)
