"""The one trio/asyncio boundary: py-libp2p runs on trio in a dedicated thread.

aiohttp, the scheduler and everything else run on the asyncio loop. Calls cross with
``trio.lowlevel.TrioToken.run_sync_soon`` one way and ``loop.call_soon_threadsafe`` /
``asyncio.run_coroutine_threadsafe`` the other (measured at ~0.13 ms per crossing here,
the best of the three bridges tried; see FIELD-NOTES.md). Nothing else imports trio:
code on the trio side uses anyio, which runs on whichever loop it finds itself in.

Never touch a trio object from the asyncio thread or vice versa; only these methods
cross.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import trio

T = TypeVar("T")
log = logging.getLogger("mycelnet.p2p")


class BridgeClosed(RuntimeError):
    """The trio thread is not running (not started, stopped, or crashed)."""


class TrioBridge:
    def __init__(self, name: str = "libp2p-trio") -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle (called on the asyncio side) -------------------------------------
    async def start(self, root: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
        """Start the trio thread and run ``root(ready)`` there until :meth:`stop`.

        Returns once ``root`` calls ``ready()``; raises what ``root`` raised if it fails first.
        """
        self._loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, args=(root, started), name=self._name, daemon=True)
        self._thread.start()
        await started

    async def stop(self, timeout: float = 10.0) -> None:
        token, nursery, thread = self._token, self._nursery, self._thread
        if token is None or nursery is None or thread is None:
            return
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(nursery.cancel_scope.cancel)
        await asyncio.get_running_loop().run_in_executor(None, thread.join, timeout)
        self._token = None

    @property
    def running(self) -> bool:
        return self._token is not None and self._thread is not None and self._thread.is_alive()

    def _thread_main(
        self, root: Callable[[Callable[[], None]], Awaitable[None]], started: asyncio.Future[None]
    ) -> None:
        loop = self._loop
        assert loop is not None

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                nursery.start_soon(_run_root, root, loop, started)
                await trio.sleep_forever()

        try:
            trio.run(main)
        except BaseException as exc:  # surfaced to the asyncio side, if it is still listening
            self._error = exc
            if not started.done():
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    loop.call_soon_threadsafe(_settle, started, exc)
            else:
                log.warning("libp2p thread ended with %s: %s", type(exc).__name__, exc)
        finally:
            self._token = None

    # -- asyncio -> trio ------------------------------------------------------------
    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` on the trio side and return its result here.

        Cancelling the awaiting asyncio task cancels the trio call too.
        """
        token, nursery, loop = self._token, self._nursery, asyncio.get_running_loop()
        if token is None or nursery is None:
            raise BridgeClosed("the libp2p host is not running")
        future: asyncio.Future[T] = loop.create_future()
        scope_box: list[trio.CancelScope] = []

        async def runner() -> None:
            with trio.CancelScope() as scope:
                scope_box.append(scope)
                try:
                    result = await fn(*args)
                except BaseException as exc:
                    loop.call_soon_threadsafe(_settle, future, exc)
                    if not isinstance(exc, Exception):
                        raise
                    return
                loop.call_soon_threadsafe(_settle_result, future, result)
            if scope.cancelled_caught:
                loop.call_soon_threadsafe(_settle, future, BridgeClosed("call cancelled on the trio side"))

        try:
            token.run_sync_soon(nursery.start_soon, runner)
        except trio.RunFinishedError:
            raise BridgeClosed("the libp2p host has stopped") from None
        try:
            return await future
        except asyncio.CancelledError:
            if scope_box and self._token is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(scope_box[0].cancel)
            raise

    # -- trio -> asyncio ------------------------------------------------------------
    async def to_asyncio(self, coro: Coroutine[Any, Any, T]) -> T:
        """From the trio side: run a coroutine on the asyncio loop and await its result."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise BridgeClosed("the asyncio loop is gone")
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        cfuture: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)

        def wake(_: object) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        cfuture.add_done_callback(wake)
        try:
            await done.wait()
        except BaseException:
            cfuture.cancel()
            raise
        return cfuture.result()

    def post_to_asyncio(self, fn: Callable[..., Any], *args: Any) -> None:
        """From the trio side: schedule a plain callback on the asyncio loop, no waiting."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)


async def _run_root(
    root: Callable[[Callable[[], None]], Awaitable[None]],
    loop: asyncio.AbstractEventLoop,
    started: asyncio.Future[None],
) -> None:
    def ready() -> None:
        loop.call_soon_threadsafe(_settle_result, started, None)

    try:
        await root(ready)
    except Exception as exc:
        loop.call_soon_threadsafe(_settle, started, exc)
        raise


def _settle(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc if isinstance(exc, Exception) else BridgeClosed(repr(exc)))


def _settle_result(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)
