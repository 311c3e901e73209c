"""Job events: each job's history of state changes, and the live subscribers of its stream.

A subscriber gets the history so far and then every later event, each exactly once: taking
the history and registering happen in one step on the event loop, and each subscriber
remembers how many events it has been given, so nothing falls between the two and nothing
is sent twice. A subscriber that reads too slowly is not allowed to grow memory without
bound: once it lags ``limit`` events behind it is dropped, and its stream ends with a
``dropped`` marker after the events it was given, so the client knows to reconnect (the
history is complete again on reconnect) instead of silently missing events.

Every method runs on the event loop's thread (JobService._move does).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from node.scheduler.job import JobRecord

QUEUE_LIMIT = 256  # events a subscriber may lag behind before it is dropped
FINISHED_KEPT = 1024  # finished jobs whose history stays in memory (the job store keeps them all)


@dataclass(frozen=True)
class Event:
    kind: Literal["state", "dropped"]
    data: dict[str, Any]


def state_events(job: JobRecord) -> list[Event]:
    """The job's transitions as events, oldest first."""
    return [Event("state", {"state": t.state.value, "reason": t.reason, "at": t.at}) for t in job.transitions]


@dataclass(eq=False)
class Subscription:
    """One client's view of one job's stream; iterate it, and close it when done."""

    job_id: str
    history: list[Event]
    limit: int
    owner: JobEvents | None
    given: int = 0  # events of the job's history this subscriber has (in history or pending)
    ended: bool = False
    _pending: deque[Event] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def _offer(self, history: Sequence[Event], final: bool) -> None:
        new = history[self.given :]
        room = self.limit - len(self._pending)
        if len(new) > room:
            self._pending.extend(new[: max(room, 0)])
            detail = f"this client fell {self.limit} events behind; reconnect to read the job's whole history"
            self._pending.append(Event("dropped", {"detail": detail}))
            self.close()
        else:
            self._pending.extend(new)
            self.given = len(history)
            if final:
                self.close()
        self._wake.set()

    async def next(self) -> Event | None:
        """The next live event; None once the stream is over (the job ended, or this was dropped)."""
        while not self._pending:
            if self.ended:
                return None
            self._wake.clear()
            await self._wake.wait()
        return self._pending.popleft()

    def close(self) -> None:
        """Stop receiving; what is pending can still be read. Safe to call more than once."""
        self.ended = True
        if self.owner is not None:
            self.owner._remove(self)
            self.owner = None
        self._wake.set()


class JobEvents:
    """Per-job history and subscribers (JobService.events)."""

    def __init__(self, limit: int = QUEUE_LIMIT, finished_kept: int = FINISHED_KEPT) -> None:
        self.limit = limit
        self.finished_kept = finished_kept
        self._history: OrderedDict[str, tuple[list[Event], bool]] = OrderedDict()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()  # jobs with a final history, oldest first

    def publish(self, job: JobRecord, upto: int | None = None) -> None:
        """Record the job's latest transition and hand it to every subscriber of the job;
        ``upto`` publishes only its first transitions (those written so far)."""
        history = state_events(job)
        if upto is not None and upto < len(history):
            history, final = history[:upto], False
        else:
            final = job.state.final
        self._history[job.job_id] = (history, final)
        self._history.move_to_end(job.job_id)
        for subscription in list(self._subscribers.get(job.job_id, ())):
            subscription._offer(history, final)
        if final:
            self._finished[job.job_id] = None
            self._finished.move_to_end(job.job_id)
            self._forget_finished()

    def subscribe(self, job: JobRecord) -> Subscription:
        """The history so far (``.history``) and, through the subscription, every later event.

        ``job`` is the record as stored; the in-memory history wins when it is newer. A job
        that has ended gives a subscription that is already over after its history.
        """
        stored = (state_events(job), job.state.final)
        history, final = self._history.get(job.job_id, stored)
        if len(stored[0]) > len(history):
            history, final = stored
        subscription = Subscription(job.job_id, list(history), self.limit, None, given=len(history))
        if final:
            subscription.ended = True
            return subscription
        subscription.owner = self
        self._subscribers.setdefault(job.job_id, set()).add(subscription)
        return subscription

    def subscribers(self, job_id: str) -> int:
        return len(self._subscribers.get(job_id, ()))

    def _remove(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.job_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.job_id]

    def _forget_finished(self) -> None:
        """Past ``finished_kept``, the oldest finished histories go (kept in their own order: a
        scan of every history each time a job ended was a visible cost under load)."""
        while len(self._finished) > self.finished_kept:
            job_id, _ = self._finished.popitem(last=False)
            self._history.pop(job_id, None)
