"""Jobs persisted in LMDB: on the requesting node, so a restart loses none and resumes the rest;
on the executing node, the answer of every job it ran, so a re-sent job id is answered from
the first run even after the executor restarts (never run twice)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node.scheduler.job import JobRecord
from storage.records import RecordTables


class JobStore:
    def __init__(self, path: Path) -> None:
        self._tables = RecordTables(path, ("jobs", "answers"))

    def save(self, job: JobRecord) -> None:
        """Write the whole record in one transaction: a crash leaves the old or the new, never half."""
        self._tables.put("jobs", job.job_id, job.to_record())

    def get(self, job_id: str) -> JobRecord | None:
        record = self._tables.get("jobs", job_id)
        return None if record is None else JobRecord.from_record(record)

    def all(self) -> Iterator[JobRecord]:
        for record in self._tables.values("jobs"):
            yield JobRecord.from_record(record)

    def unfinished(self) -> list[JobRecord]:
        return [job for job in self.all() if not job.state.final]

    def save_answer(self, job_id: str, answer: dict[str, Any]) -> None:
        """What this node answered for a job it ran (status, result CID, signed receipt, logs)."""
        self._tables.put("answers", job_id, answer)

    def answer(self, job_id: str) -> dict[str, Any] | None:
        answer: dict[str, Any] | None = self._tables.get("answers", job_id)
        return answer

    def close(self) -> None:
        self._tables.close()


def new_job_id() -> str:
    return os.urandom(16).hex()


def is_job_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
