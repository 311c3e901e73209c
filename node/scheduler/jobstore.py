"""Jobs persisted in LMDB: on the requesting node, so a restart loses none and resumes the rest;
on the executing node, the answer of every job it ran, so a re-sent job id is answered from
the first run even after the executor restarts (never run twice)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.scheduler.job import JobRecord
from node.scheduler.reputation import MAX_PEERS, Event, Observation, appended
from storage.records import RecordTables, Writer

if TYPE_CHECKING:  # verify imports dispatch, which imports the executor side, which imports this module
    from node.scheduler.verify import Evidence

MAX_PAGE = 500
RECENT_KEPT = 256  # jobs written last whose live record get() answers with, undecoded


class JobStore:
    def __init__(self, path: Path) -> None:
        self._tables = RecordTables(path, ("jobs", "answers", "index", "evidence", "reputation", "groups"))
        self._staged: dict[str, JobRecord] = {}  # job id -> the job, changed since its last write
        self._writing: dict[str, JobRecord] = {}  # job id -> the job, in the commit under way
        # job id -> the job as last written, newest last: a client following a job just submitted
        # (its event stream, its record) is answered without a read and decode of it on the loop
        self._recent: OrderedDict[str, JobRecord] = OrderedDict()
        # Every peer's reputation: read once (below), then kept in memory, where an observation
        # counts at once (placing a job reads no table); on disk with the next group commit. The
        # first lock guards the memory and is held only briefly (the event loop takes it); the
        # second orders the writes of it, each writing a peer's newest entries, in worker threads.
        self._reputation: dict[str, _Kept] = {}
        self._reputation_lock = threading.Lock()
        self._reputation_writes = threading.Lock()
        self._unwritten: set[str] = set()  # peers whose entries in memory are newer than on disk
        self._snapshot: dict[str, tuple[Observation, ...]] = {}  # replaced whole after each change
        if self._tables.count("index") != self._tables.count("jobs"):  # a store from before the index
            entries = [(_index_key(job), _summary(job)) for job in self.all()]

            def rebuild(writer: Writer) -> None:
                writer.clear("index")
                for key, summary in entries:
                    writer.put("index", key, summary)

            self._tables.write(rebuild)
        for record in self._tables.values("reputation"):
            peer, events = record.get("peer"), record.get("events")
            if isinstance(peer, str) and isinstance(events, list):
                self._reputation[peer] = _Kept.of(peer, events)
        self._snap()
        if self._tables.count("reputation") == 0 and self._tables.count("evidence"):  # evidence from before it
            self.record_outcomes(_from_evidence(self._tables.values("evidence")))

    def save(self, job: JobRecord) -> None:
        """Write the whole record and its index entry in one transaction: a crash leaves the old
        or the new, never half, and never a listing that disagrees with the job."""
        self.write_prepared([prepared(job)])
        self._keep(job)

    def write_prepared(self, jobs: list[Prepared], outcomes: frozenset[str] = frozenset()) -> None:
        """Write many jobs' records and index entries, and the reputation entries of the peers in
        ``outcomes`` as they are now, in one transaction (one commit, one sync): the group commit
        behind :meth:`stage` and :meth:`stage_outcomes`. Blocking: call it off the event loop."""

        def records(writer: Writer) -> None:
            for job_id, record, stale_key, key, summary in jobs:
                writer.put("jobs", job_id, record)
                if stale_key is not None:  # listed by creation time from now on: drop the listing from before
                    writer.delete("index", stale_key)
                writer.put("index", key, summary)

        if not outcomes:
            self._tables.write(records)
            return
        self._write_reputation(outcomes, records)

    def stage(self, job: JobRecord) -> None:
        """Hold ``job`` to be written by the next group commit (see JobService); until then
        :meth:`get` answers with it, so nothing on this node reads a state older than it knows."""
        self._staged[job.job_id] = job

    def stage_outcomes(self, observations: list[Observation]) -> None:
        """Add observations of peers to their reputation now (the next placement reads them) and
        to disk with the next group commit: an attempt's outcome costs no commit of its own."""
        with self._reputation_lock:
            self._unwritten |= self._apply(observations)

    def restage_outcomes(self, peers: frozenset[str]) -> None:
        """A group commit that carried these peers' entries failed: the next one carries them."""
        with self._reputation_lock:
            self._unwritten |= peers

    def take_staged(self) -> list[tuple[JobRecord, tuple[Prepared, int]]]:
        """The staged jobs, each with its record as it is now and that record's number of
        transitions (taken on the event loop, where the jobs change), and the stage emptied."""
        staged, self._staged = self._staged, {}
        self._writing.update(staged)
        return [(job, (prepared(job), len(job.transitions))) for job in staged.values()]

    def take_staged_outcomes(self) -> frozenset[str]:
        """The peers whose entries the next commit writes, and that stage emptied."""
        with self._reputation_lock:
            taken, self._unwritten = frozenset(self._unwritten), set()
        return taken

    @property
    def staged(self) -> int:
        return len(self._staged) + len(self._unwritten)

    def written(self, jobs: list[JobRecord]) -> None:
        """The group commit of ``jobs`` (from :meth:`take_staged`) is on disk."""
        for job in jobs:
            if self._writing.get(job.job_id) is job:
                del self._writing[job.job_id]
            self._keep(job)

    def _keep(self, job: JobRecord) -> None:
        self._recent[job.job_id] = job
        self._recent.move_to_end(job.job_id)
        while len(self._recent) > RECENT_KEPT:
            self._recent.popitem(last=False)

    def get(self, job_id: str) -> JobRecord | None:
        held = self._staged.get(job_id) or self._writing.get(job_id) or self._recent.get(job_id)
        if held is not None:
            return held  # the live job: a record being written (or read back) may be older than it
        record = self._tables.get("jobs", job_id)
        return None if record is None else JobRecord.from_record(record)

    def all(self) -> Iterator[JobRecord]:
        for record in self._tables.values("jobs"):
            yield JobRecord.from_record(record)

    def page(
        self, *, state: str | None = None, agent: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Job summaries, newest first, and the cursor of the next page (None on the last one).

        Reads the small index entries only, never the jobs' transitions, placements and logs;
        ``cursor`` is the value a previous page returned (or ``cursor_after(job_id)``).
        """
        limit = max(1, min(limit, MAX_PAGE))
        found: list[dict[str, Any]] = []
        last_key = None
        with closing(self._tables.newest_first("index", cursor)) as entries:  # ends the read transaction
            for key, summary in entries:
                if (state is None or summary["state"] == state) and (agent is None or summary["agent"] == agent):
                    if len(found) == limit:
                        return found, last_key
                    found.append(summary)
                    last_key = key
        return found, None

    def cursor_after(self, job_id: str) -> str | None:
        """The cursor that lists the jobs created before ``job_id`` (None if there is no such job)."""
        job = self.get(job_id)
        return None if job is None else _index_key(job)

    def unfinished(self) -> list[JobRecord]:
        return [job for job in self.all() if not job.state.final]

    def save_answer(self, job_id: str, answer: dict[str, Any]) -> None:
        """What this node answered for a job it ran (status, result CID, signed receipt, logs)."""
        self._tables.put("answers", job_id, answer)

    def answer(self, job_id: str) -> dict[str, Any] | None:
        answer: dict[str, Any] | None = self._tables.get("answers", job_id)
        return answer

    def save_evidence(self, evidence: Evidence) -> str:
        """Keep a recorded mismatch (both signed receipts with it) and, in the same transaction,
        a ``disagreed`` event in each blamed node's reputation; returns the evidence id."""
        key = f"{round(evidence.at * 1e6):020d}.{evidence.evidence_id}"
        record = {"evidence_id": evidence.evidence_id, **evidence.to_record()}

        with self._reputation_lock:
            peers = self._apply(_from_evidence([record]))
        self._write_reputation(frozenset(peers), lambda writer: writer.put("evidence", key, record))
        return evidence.evidence_id

    def evidence(self, limit: int = MAX_PAGE, peer: str | None = None) -> list[dict[str, Any]]:
        """Recorded mismatches, newest first (only those that blame ``peer``, when given)."""
        found: list[dict[str, Any]] = []
        with closing(self._tables.newest_first("evidence")) as entries:
            for _, record in entries:
                if peer is None or peer in record["blamed"]:
                    found.append(record)
                    if len(found) >= limit:
                        break
        return found

    def record_outcomes(self, observations: list[Observation]) -> None:
        """Add what this node observed of peers' attempts to their reputation, in one transaction."""
        if observations:
            with self._reputation_lock:
                peers = self._apply(observations)
            self._write_reputation(frozenset(peers))

    def reputation(self) -> dict[str, list[Observation]]:
        """Every peer's kept observations, oldest first (from memory: read from disk at open)."""
        with self._reputation_lock:
            return {peer: list(kept.observations) for peer, kept in self._reputation.items()}

    def reputation_snapshot(self) -> dict[str, tuple[Observation, ...]]:
        """The record as it is now, with no lock and no table read (safe on the event loop)."""
        return self._snapshot

    def _apply(self, observations: list[Observation]) -> set[str]:
        """Append ``observations`` to the record in memory (lock held); the peers changed."""
        by_peer: dict[str, list[Observation]] = {}
        for seen in observations:
            by_peer.setdefault(seen.peer, []).append(seen)
        for peer, new in by_peer.items():
            existing = self._reputation.get(peer)
            self._reputation[peer] = _Kept.of(peer, appended(None, new)) if existing is None else existing.appended(new)
        self._snap()
        return set(by_peer)

    def _snap(self) -> None:
        # one reference swap: a reader on another thread sees the old record or the new, whole
        self._snapshot = {peer: k.observations for peer, k in self._reputation.items()}

    def _write_reputation(self, peers: frozenset[str], also: Callable[[Writer], object] | None = None) -> None:
        """Write ``peers``' newest entries (and ``also``) in one transaction; writes go one at a
        time, each taking the entries as they are when it starts, so disk never goes back. A
        failed write leaves the peers to the next one."""
        with self._reputation_writes:
            with self._reputation_lock:
                entries = [(peer, list(self._reputation[peer].events)) for peer in peers if peer in self._reputation]

            def change(writer: Writer) -> None:
                if also is not None:
                    also(writer)
                for peer, events in entries:
                    writer.put("reputation", peer, {"peer": peer, "events": events})

            try:
                self._tables.write(change)
            except BaseException:
                self.restage_outcomes(peers)
                raise
        self._forget_beyond_max_peers()

    def _forget_beyond_max_peers(self) -> None:
        """Past MAX_PEERS peers, drop the ones heard from least recently (the record stays bounded)."""
        with self._reputation_writes:
            with self._reputation_lock:
                extra = len(self._reputation) - MAX_PEERS
                if extra <= 0:
                    return
                newest = {
                    p: max((seen.at for seen in k.observations), default=0.0) for p, k in self._reputation.items()
                }
                stale = sorted(newest, key=lambda peer: newest[peer])[:extra]
                for peer in stale:
                    del self._reputation[peer]
                    self._unwritten.discard(peer)
                self._snap()

            def forget(writer: Writer) -> None:
                for peer in stale:
                    writer.delete("reputation", peer)

            self._tables.write(forget)

    def save_group(self, group_id: str, record: dict[str, Any]) -> None:
        """A group job's record (node.scheduler.group); its runs are ordinary jobs in ``jobs``."""
        self._tables.put("groups", group_id, record)

    def group(self, group_id: str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = self._tables.get("groups", group_id)
        return record

    def groups(self) -> Iterator[dict[str, Any]]:
        yield from self._tables.values("groups")

    def close(self) -> None:
        self._tables.close()


@dataclass(frozen=True)
class _Kept:
    """One peer's stored reputation entries as written (``events``, kept whole so an entry this
    version cannot read survives its appends) and those read as observations."""

    events: tuple[Any, ...]
    observations: tuple[Observation, ...]
    read: tuple[Observation | None, ...] = ()  # each of ``events`` read (None: unreadable), aligned

    @classmethod
    def of(cls, peer: str, events: list[Any]) -> _Kept:
        read = tuple(Observation.from_record(peer, raw) for raw in events)
        return cls(tuple(events), tuple(seen for seen in read if seen is not None), read)

    def appended(self, new: list[Observation]) -> _Kept:
        """With ``new`` added, the newest MAX_EVENTS_PER_PEER kept (as :func:`appended`); only
        the new entries are converted: the peer's other entries were read when they came."""
        events = appended(list(self.events), new)
        read = (*self.read, *new)[len(self.read) + len(new) - len(events) :]
        return _Kept(tuple(events), tuple(seen for seen in read if seen is not None), read)


def _from_evidence(records: list[Any]) -> list[Observation]:
    """The ``disagreed`` events a list of evidence records stands for: one per blamed node."""
    return [
        Observation(str(peer), Event.DISAGREED, float(record["at"]), str(record["job_id"]))
        for record in records
        for peer in record["blamed"]
    ]


Prepared = tuple[str, Any, "str | None", str, dict[str, Any]]  # job id, record, stale index key, key, summary


def prepared(job: JobRecord) -> Prepared:
    """What writing ``job`` puts in the tables, computed now (the job object keeps changing)."""
    stale = _index_key(JobRecord(job.job_id, job.spec)) if job.transitions else None
    return job.job_id, job.to_record(), stale, _index_key(job), _summary(job)


def _index_key(job: JobRecord) -> str:
    """Creation time, in fixed-width microseconds, then the id: LMDB's byte order is time order."""
    created = job.transitions[0].at if job.transitions else 0.0
    return f"{round(created * 1e6):020d}.{job.job_id}"


def _summary(job: JobRecord) -> dict[str, Any]:
    last = job.transitions[-1] if job.transitions else None
    return {
        "job_id": job.job_id,
        "state": job.state.value,
        "agent": str(job.spec.agent),
        "created": job.transitions[0].at if job.transitions else 0.0,
        "updated": last.at if last else 0.0,
        "reason": last.reason if last else "",
    }


def new_job_id() -> str:
    return os.urandom(16).hex()


def is_job_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
