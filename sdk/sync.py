"""The blocking client: the same methods as :class:`sdk.Client`, for scripts and notebooks.

Its calls run on a private event loop. Where no loop runs in the calling thread (a script)
that loop runs right there; where one does (a Jupyter cell, an async application), running
another loop in the same thread is impossible, so from then on the private loop runs on a
helper thread and each call waits for its result there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agents.receipt import Receipt
from sdk.client import Client, Job, NodeLogs, StateChange
from sdk.keys import Keypair, PolicyTerms
from sdk.verify import SettlementCheck
from sdk.wallet import Wallet
from storage.cid import CID

T = TypeVar("T")
U = TypeVar("U")
INTERRUPT_GRACE = 1.0  # seconds a call cancelled by Ctrl-C gets to unwind


def _settle(call: asyncio.Future[Any]) -> None:
    """Retrieve how a cancelled call ended: it is not the caller's news, and an unretrieved
    exception would be logged as "never retrieved" when the task is collected."""
    if not call.cancelled():
        call.exception()


class _Interrupted(Exception):
    """A call stopped by Ctrl-C, raised inside the loop and turned into KeyboardInterrupt out of it."""


class SyncClient:
    """``with SyncClient("http://127.0.0.1:5080") as client: cid = client.put(b"...")``"""

    def __init__(self, url: str, token: str | None = None, wallet: Wallet | None = None, timeout: float = 300) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = Client(url, token, wallet, timeout)
        self._thread: threading.Thread | None = None  # the helper thread, once a caller had a running loop
        self._abandoned: list[asyncio.Task[Any]] = []  # calls cut short by Ctrl-C that did not unwind

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run one call to its end. On Ctrl-C the call is cancelled and given INTERRUPT_GRACE
        seconds to unwind (a stream mid-read closes its connection); one that does not is left,
        still referenced, so the interrupt reaches the caller instead of hanging in cleanup."""
        if self._thread is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return self._run_here(coroutine)
            # daemon: a client never closed must not keep the interpreter from exiting
            self._thread = threading.Thread(target=self._loop.run_forever, name="mycel-sync-client", daemon=True)
            self._thread.start()
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:  # interrupted while waiting (Ctrl-C in a notebook): cancelled, not left running
            future.cancel()
            raise

    def _run_here(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a call on the private loop in this thread. Ctrl-C cancels the call, so it
        unwinds inside the loop (aiohttp's own tasks included) instead of a KeyboardInterrupt
        landing in one of them; the unwinding gets INTERRUPT_GRACE seconds, then the call is
        abandoned and the interrupt reaches the caller. A second Ctrl-C is immediate.

        The loop is never stopped from outside a call: stopping it mid-call would leave the
        call's completion callback queued, and that stale callback would stop the next call's
        loop (the client's close among them) before it finished.
        """
        interrupt = asyncio.Event()
        pressed = False

        def on_sigint() -> None:  # run by the loop, which the signal wakes whichever thread took it
            nonlocal pressed
            if pressed:
                raise KeyboardInterrupt  # out of run_until_complete: a loop callback's BaseException
            pressed = True
            interrupt.set()

        handled = threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGINT) is signal.default_int_handler
        )
        if handled:
            # the loop's own signal handling: a plain handler runs only when the main thread runs
            # Python code, so a Ctrl-C taken by another thread waited for the loop's next wake-up
            self._loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return self._loop.run_until_complete(self._interruptible(coroutine, interrupt))
        except _Interrupted:
            raise KeyboardInterrupt from None
        finally:
            if handled:
                self._loop.remove_signal_handler(signal.SIGINT)  # back to default_int_handler

    async def _interruptible(self, coroutine: Coroutine[Any, Any, T], interrupt: asyncio.Event) -> T:
        """The call's result, or, once ``interrupt`` is set, the call cancelled and given
        INTERRUPT_GRACE seconds to unwind, then :class:`_Interrupted` (a Ctrl-C wins over a
        result that arrives with it: the user asked to stop)."""
        call = asyncio.ensure_future(coroutine)
        stop = asyncio.ensure_future(interrupt.wait())
        try:
            await asyncio.wait({call, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            call.cancel()
            raise
        finally:
            stop.cancel()
        if not interrupt.is_set():
            return call.result()
        call.cancel()
        await asyncio.wait({call}, timeout=INTERRUPT_GRACE)
        if call.done():
            _settle(call)
        else:
            # still referenced, and close() awaits nothing more here; the process that pressed
            # Ctrl-C is usually exiting, so no "destroyed but pending" warning for this task
            call._log_destroy_pending = False  # type: ignore[attr-defined]
            self._abandoned.append(call)
        raise _Interrupted

    def _drain_abandoned(self) -> bool:
        """Give calls abandoned after a Ctrl-C one more INTERRUPT_GRACE to finish unwinding (on a
        loaded machine the first grace can pass mid-unwinding; a coroutine left half unwound is
        torn down at interpreter exit with an "Exception ignored" traceback). True once all have."""
        pending = [task for task in self._abandoned if not task.done()]
        if pending and self._thread is None:
            try:
                self._loop.run_until_complete(asyncio.wait(pending, timeout=INTERRUPT_GRACE))
            except BaseException:  # another Ctrl-C: stop waiting now
                return False
        if any(not task.done() for task in self._abandoned):
            return False
        for task in self._abandoned:
            _settle(task)
        self._abandoned.clear()
        return True

    def _close_after_interrupt(self, stream: AsyncGenerator[Any, None]) -> None:
        """Close an event stream a Ctrl-C cut short, within INTERRUPT_GRACE, never raising: left
        open, it is torn down at interpreter exit with an "Exception ignored" traceback."""
        if self._abandoned or self._loop.is_closed():
            return  # a step still unwinds inside it (closing would fail as "already running")
        with contextlib.suppress(BaseException):
            self._run(asyncio.wait_for(stream.aclose(), INTERRUPT_GRACE))

    def _drive(self, stream: AsyncGenerator[U, None]) -> Iterator[U]:
        """Iterate an async stream from synchronous code, one item per step on the private loop,
        closing the stream however the caller stops (early exit, failure or Ctrl-C)."""
        try:
            while True:
                try:
                    item = self._run(stream.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        except KeyboardInterrupt:
            # a step cancelled mid-read has ended the stream; one whose item arrived with the
            # Ctrl-C left it paused at that item, holding its response: close it now, briefly
            self._close_after_interrupt(stream)
            raise
        except BaseException:  # the caller stopped early (GeneratorExit) or a step failed
            self._run(stream.aclose())
            raise

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._abandoned and not self._drain_abandoned():
            return  # a call cut short by Ctrl-C still unwinding: nothing more is awaited on this loop
        try:
            self._run(self._client.close())
        finally:
            if self._thread is None:
                for cleanup in (self._loop.shutdown_asyncgens, self._loop.shutdown_default_executor):
                    self._loop.run_until_complete(cleanup())
                self._loop.close()
            else:  # the same, done on the helper thread: this one may be running a loop of its own
                for cleanup in (self._loop.shutdown_asyncgens, self._loop.shutdown_default_executor):
                    asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result()
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join()
                self._loop.close()

    @property
    def wallet(self) -> Wallet | None:
        return self._client.wallet

    def node(self) -> dict[str, Any]:
        return self._run(self._client.node())

    def environment(self) -> dict[str, Any]:
        return self._run(self._client.environment())

    def peers(self) -> list[dict[str, Any]]:
        return self._run(self._client.peers())

    def put(
        self, content: bytes | str | os.PathLike[str], policy: PolicyTerms | None = None, owner: Keypair | None = None
    ) -> CID:
        return self._run(self._client.put(content, policy, owner))

    def apply_policy(self, record: bytes) -> dict[str, Any]:
        return self._run(self._client.apply_policy(record))

    def policy(self, dataset: CID | str) -> dict[str, Any]:
        return self._run(self._client.policy(dataset))

    def get(self, cid: CID | str, dest: str | os.PathLike[str]) -> Path:
        return self._run(self._client.get(cid, dest))

    def cat(self, cid: CID | str) -> bytes:
        return self._run(self._client.cat(cid))

    def deploy(self, agent_dir: str | os.PathLike[str]) -> CID:
        return self._run(self._client.deploy(agent_dir))

    def run(
        self,
        agent: CID | str,
        inputs: Mapping[str, CID | str] | None = None,
        args: list[str] | tuple[str, ...] = (),
        redundancy: int = 1,
        region: str | list[str] | None = None,
        max_price: int | None = None,
        pay: int | None = None,
        wait: bool = True,
        timeout: float = 300,
        min_stake: int = 0,
        spot_check: float = 0.0,
        trusted: Sequence[str] = (),
        client_key: Keypair | None = None,
        grants: Mapping[str, Sequence[bytes]] | None = None,
        publisher_signatures: Sequence[bytes] = (),
    ) -> SyncJob:
        job = self._run(
            self._client.run(
                agent, inputs, args, redundancy, region, max_price, pay, wait, timeout, min_stake,
                spot_check=spot_check, trusted=trusted, client_key=client_key, grants=grants,
                publisher_signatures=publisher_signatures,
            )
        )  # fmt: skip
        return SyncJob(self, job)

    def jobs(
        self, state: str | None = None, agent: CID | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        return self._run(self._client.jobs(state, agent, limit, cursor))

    def fetch_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self._run(self._client.fetch_json(path, params))

    def agents(self) -> list[dict[str, Any]]:
        return self._run(self._client.agents())

    def agent(self, agent: CID | str) -> dict[str, Any]:
        return self._run(self._client.agent(agent))

    def resolve_agent(self, agent: CID | str) -> CID:
        return self._run(self._client.resolve_agent(agent))

    def claims(self, state: str | None = None) -> dict[str, Any]:
        return self._run(self._client.claims(state))

    def job(self, job_id: str) -> SyncJob:
        return SyncJob(self, self._run(self._client.job(job_id)))


class SyncJob:
    """A submitted job, blocking flavour; see :class:`sdk.client.Job`."""

    def __init__(self, owner: SyncClient, job: Job) -> None:
        self._owner = owner
        self._job = job

    @property
    def job_id(self) -> str:
        return self._job.job_id

    @property
    def status(self) -> str:
        return self._job.status

    @property
    def info(self) -> dict[str, Any]:
        return self._job.info

    @property
    def result_cid(self) -> CID | None:
        return self._job.result_cid

    @property
    def node(self) -> str | None:
        return self._job.node

    @property
    def corroboration(self) -> dict[str, Any]:
        return self._job.corroboration

    @property
    def input_bytes_fetched(self) -> dict[str, int]:
        return self._job.input_bytes_fetched

    def refresh(self) -> dict[str, Any]:
        return self._owner._run(self._job.refresh())

    def wait(self, timeout: float = 300) -> SyncJob:
        self._owner._run(self._job.wait(timeout))
        return self

    def events(self) -> Iterator[dict[str, Any]]:
        """Each state change as the node reports it, ending with the final state.

        A generator driving the event stream one event at a time, so a caller sees
        "running" while the job runs rather than the whole history once it has ended.
        """
        return self._owner._drive(self._job.events())

    def follow_logs(self) -> Iterator[StateChange | NodeLogs]:
        """State changes and each node's logs as they come; see :meth:`sdk.client.Job.follow_logs`."""
        return self._owner._drive(self._job.follow_logs())

    def cancel(self) -> SyncJob:
        """Ask the node to cancel the job; see :meth:`sdk.client.Job.cancel`."""
        self._owner._run(self._job.cancel())
        return self

    def logs(self) -> dict[str, str]:
        return self._owner._run(self._job.logs())

    def explain(self) -> list[dict[str, Any]]:
        return self._owner._run(self._job.explain())

    def receipt_bytes(self, node: str | None = None) -> bytes:
        return self._owner._run(self._job.receipt_bytes(node))

    def all_receipt_bytes(self) -> dict[str, bytes]:
        return self._owner._run(self._job.all_receipt_bytes())

    def receipt(self) -> Receipt:
        return self._owner._run(self._job.receipt())

    def result(self, dest: str | os.PathLike[str]) -> Path:
        return self._owner._run(self._job.result(dest))

    @property
    def payments(self) -> dict[str, dict[str, Any]]:
        return self._job.payments

    def pay(self) -> dict[str, dict[str, Any]]:
        return self._owner._run(self._job.pay())

    def verify_settlement(self) -> list[SettlementCheck]:
        return self._owner._run(self._job.verify_settlement())
