"""The blocking client: the same methods as :class:`sdk.Client`, for scripts and notebooks."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from agents.receipt import Receipt
from sdk.client import Client, Job, NodeLogs, StateChange
from sdk.verify import SettlementCheck
from sdk.wallet import Wallet
from storage.cid import CID

T = TypeVar("T")
INTERRUPT_GRACE = 1.0  # seconds a call cancelled by Ctrl-C gets to unwind


class SyncClient:
    """``with SyncClient("http://127.0.0.1:5080") as client: cid = client.put(b"...")``"""

    def __init__(self, url: str, token: str | None = None, wallet: Wallet | None = None, timeout: float = 300) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = Client(url, token, wallet, timeout)
        self._abandoned: list[asyncio.Task[Any]] = []  # calls cut short by Ctrl-C that did not unwind

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run one call to its end. On Ctrl-C the call is cancelled and given INTERRUPT_GRACE
        seconds to unwind (a stream mid-read closes its connection); one that does not is left,
        still referenced, so the interrupt reaches the caller instead of hanging in cleanup."""
        task = self._loop.create_task(coroutine)
        try:
            return self._loop.run_until_complete(task)
        except KeyboardInterrupt:
            task.cancel()
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(asyncio.wait({task}, timeout=INTERRUPT_GRACE))
            if not task.done():
                self._abandoned.append(task)
            raise

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._abandoned:  # after a Ctrl-C: nothing more is awaited on this loop, which may be wedged
            return
        self._run(self._client.close())
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

    def put(self, content: bytes | str | os.PathLike[str]) -> CID:
        return self._run(self._client.put(content))

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
    ) -> SyncJob:
        job = self._run(
            self._client.run(agent, inputs, args, redundancy, region, max_price, pay, wait, timeout, min_stake)
        )
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
        stream = self._job.events()
        try:
            while True:
                try:
                    event = self._owner._run(stream.__anext__())
                except StopAsyncIteration:
                    return
                yield event
        except KeyboardInterrupt:
            raise  # the step was cancelled (see SyncClient._run): there is no stream left to close
        except BaseException:  # the caller stopped early (GeneratorExit) or a step failed
            self._owner._run(stream.aclose())
            raise

    def follow_logs(self) -> Iterator[StateChange | NodeLogs]:
        """State changes and each node's logs as they come; see :meth:`sdk.client.Job.follow_logs`."""
        stream = self._job.follow_logs()
        try:
            while True:
                try:
                    item = self._owner._run(stream.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        except KeyboardInterrupt:
            raise  # the step was cancelled (see SyncClient._run): there is no stream left to close
        except BaseException:  # the caller stopped early (GeneratorExit) or a step failed
            self._owner._run(stream.aclose())
            raise

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
