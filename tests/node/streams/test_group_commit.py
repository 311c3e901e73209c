"""Group commit of origin appends (node.streams.groupcommit): appends that arrive while a commit is
under way share the next transaction, each still all or none, each answered once it is durable."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from node.metrics import Metrics
from node.streams.model import Refusal, StreamRefused
from node.streams.service import StreamService
from node.streams.store import StreamStore
from tests.node.streams.helpers import Writer


@pytest.fixture
def service(tmp_path: Path) -> Iterator[StreamService]:
    service = StreamService(StreamStore(tmp_path / "s"), cast(Any, None), Metrics())
    yield service
    service.store.close()


def _hold_first_append(service: StreamService) -> threading.Event:
    """The first store append waits for the returned event (a slow disk): the rest arrive meanwhile."""
    release = threading.Event()
    real = service.store.append
    calls = [0]

    def append(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            assert release.wait(10)
        return real(*args, **kwargs)

    service.store.append = append  # type: ignore[method-assign]
    return release


async def _until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.005)


async def test_appends_during_a_commit_share_the_next_one_and_each_is_durable_when_answered(
    service: StreamService,
) -> None:
    writers = [Writer(f"w{i}") for i in range(17)]
    release = _hold_first_append(service)
    commits = service.store._lmdb.commits
    first = asyncio.create_task(service.append(writers[0].stream, [writers[0].next(b"first")]))
    await _until(lambda: service._groups._committing)
    rest = [asyncio.create_task(service.append(w.stream, [w.next(b"x")])) for w in writers[1:]]
    await _until(lambda: len(service._groups._waiting) == len(rest))  # each verified, waiting for the disk
    assert not any(task.done() for task in rest)  # nothing is answered before it is written
    release.set()
    for task in [first, *rest]:
        info = await task
        assert (await asyncio.to_thread(service.store.info, info.stream)).head_seq == 1  # type: ignore[union-attr]
    assert service.store._lmdb.commits - commits == 2  # the first append's own, then one for the other 16
    assert service.heads().keys() == {w.stream for w in writers}


async def test_in_a_group_each_batch_is_all_or_none_and_batches_of_one_stream_go_in_order(
    service: StreamService,
) -> None:
    lead, same, gap = Writer("lead"), Writer("same"), Writer("gap")
    await service.append(same.stream, [same.next(b"1")])
    await service.append(gap.stream, [gap.next(b"1")])
    release = _hold_first_append(service)
    first = asyncio.create_task(service.append(lead.stream, [lead.next()]))
    await _until(lambda: service._groups._committing)
    changed = service.changed(same.stream)
    two, three = same.next(b"2"), same.next(b"3")
    gap.next()
    tasks = []
    for stream, batch in ((same.stream, [two]), (gap.stream, [gap.next(b"3"), gap.next(b"4")]), (same.stream, [three])):
        tasks.append(asyncio.create_task(service.append(stream, batch)))  # the gap batch: seq 2 is missing
        await _until(lambda: len(service._groups._waiting) == len(tasks))  # queued in this order
    release.set()
    await first
    assert (await tasks[0]).head_seq == 2 and (await tasks[2]).head_seq == 3  # the second saw the first
    with pytest.raises(StreamRefused) as refused:
        await tasks[1]
    assert refused.value.refusal is Refusal.GAP
    assert (await asyncio.to_thread(service.store.info, gap.stream)).head_seq == 1  # type: ignore[union-attr]
    assert [e.payload for e in await service.since(same.stream, 0, 5)] == [b"1", b"2", b"3"]
    assert changed.is_set() and service.origin_head(same.stream) == 3
    value = service.metrics.registry.get_sample_value("mycel_stream_entries_refused_total", {"reason": "gap"})
    assert value == 1


async def test_an_append_whose_caller_went_away_is_still_stored_and_announced(service: StreamService) -> None:
    lead, gone = Writer("lead"), Writer("gone")
    release = _hold_first_append(service)
    first = asyncio.create_task(service.append(lead.stream, [lead.next()]))
    await _until(lambda: service._groups._committing)
    task = asyncio.create_task(service.append(gone.stream, [gone.next()]))
    await _until(lambda: len(service._groups._waiting) == 1)
    task.cancel()
    release.set()
    await first
    await service._groups.stop()
    assert service.origin_head(gone.stream) == 1  # stored, and the node's view of it moved too
