"""Jobs persisted in LMDB: on the requesting node, so a restart loses none and resumes the rest;
on the executing node, the answer of every job it ran, so a re-sent job id is answered from
the first run even after the executor restarts (never run twice)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb

from node.scheduler.job import JobRecord
from storage import dagcbor


class JobStore:
    def __init__(self, path: Path, map_size: int = 256 << 20) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(path), map_size=map_size, max_dbs=2)
        self._jobs = self._env.open_db(b"jobs")
        self._answers = self._env.open_db(b"answers")

    def save(self, job: JobRecord) -> None:
        """Write the whole record in one transaction: a crash leaves the old or the new, never half."""
        with self._env.begin(write=True, db=self._jobs) as txn:
            txn.put(job.job_id.encode(), dagcbor.encode(job.to_record()))

    def get(self, job_id: str) -> JobRecord | None:
        with self._env.begin(db=self._jobs) as txn:
            raw = txn.get(job_id.encode())
        return None if raw is None else JobRecord.from_record(dagcbor.decode(raw))

    def all(self) -> Iterator[JobRecord]:
        with self._env.begin(db=self._jobs) as txn:
            items = [value for _, value in txn.cursor()]
        for raw in items:
            yield JobRecord.from_record(dagcbor.decode(raw))

    def unfinished(self) -> list[JobRecord]:
        return [job for job in self.all() if not job.state.final]

    def save_answer(self, job_id: str, answer: dict[str, Any]) -> None:
        """What this node answered for a job it ran (status, result CID, signed receipt, logs)."""
        with self._env.begin(write=True, db=self._answers) as txn:
            txn.put(job_id.encode(), dagcbor.encode(answer))

    def answer(self, job_id: str) -> dict[str, Any] | None:
        with self._env.begin(db=self._answers) as txn:
            raw = txn.get(job_id.encode())
        if raw is None:
            return None
        answer: dict[str, Any] = dagcbor.decode(raw)
        return answer

    def close(self) -> None:
        self._env.close()


def new_job_id() -> str:
    return os.urandom(16).hex()


def is_job_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
