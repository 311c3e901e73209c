from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import anyio
import pytest

from node.p2p.bridge import BridgeClosed, TrioBridge


async def _root(ready: Callable[[], None]) -> None:
    ready()
    await anyio.sleep_forever()


async def test_calls_cross_both_ways_and_errors_propagate() -> None:
    bridge = TrioBridge()
    await bridge.start(_root)
    main_thread = threading.get_ident()

    async def on_trio(x: int) -> tuple[int, bool]:
        async def on_asyncio() -> int:
            return threading.get_ident()

        back = await bridge.to_asyncio(on_asyncio())
        return x * 2, back == main_thread and threading.get_ident() != main_thread

    assert await bridge.call(on_trio, 21) == (42, True)

    async def boom() -> None:
        raise ValueError("from trio")

    with pytest.raises(ValueError, match="from trio"):
        await bridge.call(boom)
    await bridge.stop()
    assert not bridge.running
    with pytest.raises(BridgeClosed):
        await bridge.call(on_trio, 1)


async def test_cancelling_the_asyncio_side_cancels_the_trio_call() -> None:
    bridge = TrioBridge()
    await bridge.start(_root)
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await anyio.sleep(30)
        finally:
            cancelled.set()

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(bridge.call(slow), 0.2)
    await asyncio.get_running_loop().run_in_executor(None, cancelled.wait, 5)
    assert cancelled.is_set()
    await bridge.stop()


async def test_root_failure_is_reported_by_start() -> None:
    async def broken(ready: Callable[[], None]) -> None:
        raise OSError("cannot listen")

    bridge = TrioBridge()
    with pytest.raises(Exception, match="cannot listen"):
        await bridge.start(broken)
