"""Group commit of origin appends: concurrent appends share one synced LMDB transaction.

Why: each append is answered only once its entries are durable (LMDB's commit with fsync),
and separate writers' single appends each paid a commit of their own, one after another
behind LMDB's writer lock. Now an append that finds no commit under way verifies and commits
in one thread hop, as before (no extra hop when there is no contention); appends that arrive
while a commit is under way verify in their own threads and then wait together, and the next
commit writes all of them in one transaction (:meth:`StreamStore.append_group`: each batch
still all or none, each gets its own info or refusal). An append's answer, and its effects on
the node (head, consumers, compaction: ``appended``), come only after its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.streams.model import Retention, StreamInfo, StreamRefused
from node.streams.store import Batch, StreamStore
from storage.streamentry import Entry

MAX_GROUP_ENTRIES = 1024  # entries written by one group transaction (at least one batch)


@dataclass
class _Waiting:
    batch: Batch
    count: int
    answer: asyncio.Future[StreamInfo]


class AppendGroups:
    def __init__(
        self,
        store: StreamStore,
        verify: Callable[[str, Sequence[bytes]], list[Entry]],
        appended: Callable[[StreamInfo, int], None],
        refused: Callable[[StreamRefused], None],
    ) -> None:
        self._store = store
        self._verify = verify  # blocking (signatures): run in a thread
        self._appended = appended  # on the loop, after the commit
        self._refused = refused
        self._committing = False  # a commit is under way (the first append's own, or a group's)
        self._waiting: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None
        self.groups = 0  # group transactions written (tests and benches read it)

    async def append(self, stream: str, raws: Sequence[bytes], retention: Retention | None) -> StreamInfo:
        """Verify and append one batch at the origin; answered once it is durable.

        The commit goes on if the caller is cancelled (an HTTP client that went away): the
        entry is then stored and counted as appended all the same, only the answer is lost.
        """
        if self._committing:
            try:
                entries = await asyncio.to_thread(self._verify, stream, raws)
            except StreamRefused as exc:
                self._refused(exc)
                raise
            answer: asyncio.Future[StreamInfo] = asyncio.get_running_loop().create_future()
            self._waiting.append(_Waiting(Batch(entries, origin=True, retention=retention), len(raws), answer))
            self._kick()
        else:
            self._committing = True
            answer = asyncio.ensure_future(self._alone(stream, raws, retention))
        answer.add_done_callback(_retrieved)
        return await asyncio.shield(answer)

    async def stop(self) -> None:
        """Let the commit under way (and the appends waiting for it) finish."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _alone(self, stream: str, raws: Sequence[bytes], retention: Retention | None) -> StreamInfo:
        def verified_append() -> StreamInfo:  # one thread hop for both (a hop costs ms on a loaded host)
            return self._store.append(self._verify(stream, raws), origin=True, retention=retention)

        try:
            info = await asyncio.to_thread(verified_append)
        except StreamRefused as exc:
            self._refused(exc)
            raise
        finally:
            self._committing = False
            self._kick()
        self._appended(info, len(raws))
        return info

    def _kick(self) -> None:
        if self._waiting and not self._committing:
            self._committing = True
            self._task = asyncio.create_task(self._commit_waiting())

    async def _commit_waiting(self) -> None:
        try:
            while self._waiting:
                group: list[_Waiting] = []
                size = 0
                while self._waiting and (not group or size + len(self._waiting[0].batch.entries) <= MAX_GROUP_ENTRIES):
                    group.append(self._waiting.pop(0))
                    size += len(group[-1].batch.entries)
                try:
                    results = await asyncio.to_thread(self._store.append_group, [item.batch for item in group])
                except Exception as exc:  # the disk refused the transaction: none of them is stored
                    for item in group:
                        _settle(item.answer, exc)
                    continue
                self.groups += 1
                for item, result in zip(group, results, strict=True):
                    if isinstance(result, StreamRefused):
                        self._refused(result)
                        _settle(item.answer, result)
                    else:
                        self._appended(result, item.count)
                        _settle(item.answer, result)
        finally:
            self._committing = False
            self._kick()  # appends that queued after the loop's last look (none: it ran to empty)


def _settle(answer: asyncio.Future[StreamInfo], result: StreamInfo | BaseException) -> None:
    if answer.done():
        return
    if isinstance(result, BaseException):
        answer.set_exception(result)
    else:
        answer.set_result(result)


def _retrieved(answer: asyncio.Future[StreamInfo]) -> None:
    """Mark an answer's exception seen: the caller that would have read it may be gone."""
    with contextlib.suppress(asyncio.CancelledError):
        answer.exception()
