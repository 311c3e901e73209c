"""Run one job: stage the workspace, run the agent in its runtime, store the result, sign a receipt."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing

from agents import receipt as receipts
from agents.errors import RuntimeUnavailable
from agents.outcome import Limit, Outcome
from agents.runtime.base import RawRun, RunRequest, Runtime, Workspace, tree_size
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import StorageError
from storage.files import add_path
from storage.peerid import peer_id_for
from storage.unixfs.importer import ImportOptions


@dataclass(frozen=True)
class JobOutcome:
    status: str
    result: CID | None
    receipt: bytes
    logs: bytes
    logs_truncated: bool
    raw: RawRun
    outcome: Outcome = field(default_factory=Outcome.ok)


class Executor:
    def __init__(
        self,
        store: BlockStore,
        runtimes: dict[str, Runtime],
        signing_key: nacl.signing.SigningKey,
        work_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.runtimes = runtimes
        self.signing_key = signing_key
        self.node = peer_id_for(bytes(signing_key.verify_key))
        self.work_dir = work_dir

    def run(self, request: RunRequest) -> JobOutcome:
        manifest = request.bundle.manifest
        runtime = self.runtimes.get(manifest.runtime)
        if runtime is None:
            raise RuntimeUnavailable(
                f"agent {manifest.name} needs the {manifest.runtime} runtime, which this node lacks"
            )
        started = time.time()
        result: CID | None = None
        with Workspace(self.store, request, self.work_dir) as workspace:
            raw = runtime.run(request, workspace)
            bytes_out = tree_size(workspace.out)
            status = raw.status
            if status == "ok" and bytes_out > request.effective_limits.max_output_mib << 20:
                status = "killed: output limit"
            if status == "ok":
                try:
                    options = ImportOptions(include_hidden=True)
                    result = add_path(self.store, workspace.out, options=options, name=f"result {request.job_id}").cid
                except StorageError as exc:
                    status = f"failed: invalid output: {exc}"
            bytes_in = workspace.bytes_in
        ended = time.time()
        usage = receipts.Usage(raw.cpu_seconds, raw.peak_memory_bytes, raw.wall_seconds, bytes_in, bytes_out)
        record = receipts.Receipt(
            job_id=request.job_id,
            agent=request.bundle.agent_id,
            inputs=dict(request.inputs),
            result=result,
            status=status,
            runtime=runtime.name,
            runtime_version=runtime.version,
            usage=usage,
            started_at=started,
            ended_at=ended,
            node=self.node,
        )
        signed = receipts.sign(record, self.signing_key)
        cancelled = request.cancel is not None and request.cancel.is_set() and status != "ok"
        outcome = Outcome.cancelled() if cancelled else _outcome_of(status)
        return JobOutcome(status, result, signed, raw.logs, raw.logs_truncated, raw, outcome)


_LIMITS = {"cpu": Limit.CPU, "memory": Limit.MEMORY, "wall-clock": Limit.WALL, "output": Limit.OUTPUT,
           "process": Limit.PROCESSES}  # fmt: skip


def _outcome_of(status: str) -> Outcome:
    """Bridge from the runtimes' status words (set by the node, never by the agent) to an Outcome,
    until the runtimes report an Outcome themselves."""
    if status == "ok":
        return Outcome.ok()
    kind, _, detail = status.partition(": ")
    if kind == "killed":
        limit = _LIMITS.get(detail.removesuffix(" limit"))
        return Outcome.killed(limit, detail) if limit is not None else Outcome.failed(detail)
    if detail == "sandbox could not be set up":
        return Outcome.node_error(detail)
    return Outcome.failed(detail or status)
