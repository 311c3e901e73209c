"""Run one job: stage the workspace, run the agent in its runtime, store the result, sign a receipt."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import nacl.signing

from agents import receipt as receipts
from agents.environment import agent_environment
from agents.errors import ManifestError, MissingPackages, RuntimeUnavailable
from agents.input_cache import InputCache
from agents.inputs import inputs_env
from agents.manifest import WHEELS_DIR, scan_wheels
from agents.outcome import Outcome, OutcomeKind
from agents.reaper import Reaper
from agents.runtime.base import RawRun, RunRequest, Runtime, Staging, Workspace, breach, remove_tree, scan_tree
from agents.wheelenv import WheelEnvironments, WheelInstallFailed
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import UnixFSError
from storage.files import add_path
from storage.peerid import peer_id_for
from storage.unixfs.exporter import list_directory
from storage.unixfs.importer import ImportOptions


@dataclass(frozen=True)
class JobOutcome:
    outcome: Outcome
    result: CID | None
    receipt: bytes
    logs: bytes
    logs_truncated: bool
    raw: RawRun

    @property
    def status(self) -> str:
        """The outcome's label (also the receipt's ``status``), for display: decide on ``outcome``."""
        return self.outcome.label


class Executor:
    def __init__(
        self,
        store: BlockStore,
        runtimes: dict[str, Runtime],
        signing_key: nacl.signing.SigningKey,
        work_dir: Path | None = None,
        wheel_envs: WheelEnvironments | None = None,
        input_cache: InputCache | None = None,
        reaper: Reaper | None = None,
    ) -> None:
        self.store = store
        # None: a job's workspace is removed before run() returns; else in the reaper's thread, after
        self.reaper = reaper
        self.wheel_envs = wheel_envs  # None: bundles that bring wheels cannot run here
        self.runtimes = runtimes
        self.signing_key = signing_key
        self.node = peer_id_for(bytes(signing_key.verify_key))
        self.work_dir = work_dir
        # None: every job's inputs are exported from the store (verified, copied) into its workspace
        self.input_cache = input_cache

    def sweep_work_dir(self) -> int:
        """Remove the job workspaces a previous run of the node left behind; returns how many.

        A node killed mid-job never reaches its ``Workspace.close()``; its sandboxes died
        with it (parent-death signal), but their workspaces stay on disk. Called once at
        start, under the data-dir lock, so no job of this node is running yet. Only
        ``job-*`` directories are touched: nothing else in the directory is the executor's.
        """
        if self.work_dir is None or not self.work_dir.is_dir():
            return 0
        stale = [entry for entry in self.work_dir.iterdir() if entry.name.startswith("job-") and entry.is_dir()]
        for entry in stale:
            remove_tree(entry)
        return len(stale)

    def run(self, request: RunRequest) -> JobOutcome:
        manifest = request.bundle.manifest
        runtime = self.runtimes.get(manifest.runtime)
        if runtime is None:
            raise RuntimeUnavailable(
                f"agent {manifest.name} needs the {manifest.runtime} runtime, which this node lacks"
            )
        if manifest.wheels and self.wheel_envs is None:
            raise RuntimeUnavailable(f"agent {manifest.name} brings wheels, and this node keeps no wheel environments")
        if manifest.node_requires:  # what the bundle's wheels provide, parse() checked against requires
            unmet = agent_environment().unmet(manifest.node_requires)
            if unmet:
                raise MissingPackages(
                    f"agent {manifest.name} requires {', '.join(unmet)}; this node's python environment "
                    "lacks it (mycel agent env lists what a node offers)"
                )
        started = time.time()
        result: CID | None = None
        limits = request.effective_limits
        staging = getattr(runtime, "input_staging", Staging.COPY)  # what this runtime can keep read-only
        staging = staging if isinstance(staging, Staging) else Staging.COPY
        # a bundle's wheels are installed from its staged code/, whatever the runtime reads
        stage_code = bool(getattr(runtime, "stages_code", True)) or bool(manifest.wheels)
        scratch = bool(getattr(runtime, "uses_scratch", True))
        with Workspace(self.store, request, self.work_dir, self.input_cache, staging, self.reaper,
                       stage_code=stage_code, scratch=scratch) as workspace:  # fmt: skip
            staged = replace(request, env={**request.env, **inputs_env(workspace.staged, request.inputs)})
            try:
                with self._wheel_env(request, workspace) as site:
                    raw = runtime.run(replace(staged, site=site), workspace)
            except WheelInstallFailed as exc:  # the bundle's fault: the same on every node, no failover
                raw = RawRun(Outcome.failed(str(exc)), None, b"", False, 0.0, 0, 0.0)
            scan = scan_tree(workspace.writable)
            bytes_out = scan.bytes
            outcome = raw.outcome
            over = breach(scan, limits.max_output_mib << 20, limits.max_output_files)
            if over is not None and outcome.kind in (OutcomeKind.OK, OutcomeKind.FAILED):
                # the node's own count decides: an agent that swallowed EFBIG still broke the cap
                outcome = over
            if outcome.is_ok:
                outcome, result = self._import(request, workspace)
            bytes_in = workspace.bytes_in
        privacy = None
        if request.private is not None:
            outcome, privacy = self._release(request.private, outcome, result)
        ended = time.time()
        usage = receipts.Usage(raw.cpu_seconds, raw.peak_memory_bytes, raw.wall_seconds, bytes_in, bytes_out)
        record = receipts.Receipt(
            job_id=request.job_id,
            agent=request.bundle.agent_id,
            inputs=dict(request.inputs),
            result=result,
            status=outcome.label,
            runtime=runtime.name,
            runtime_version=runtime.version,
            usage=usage,
            started_at=started,
            ended_at=ended,
            node=self.node,
            privacy=privacy,
        )
        signed = receipts.sign(record, self.signing_key)
        return JobOutcome(outcome, result, signed, raw.logs, raw.logs_truncated, raw)

    @contextlib.contextmanager
    def _wheel_env(self, request: RunRequest, workspace: Workspace) -> Iterator[Path | None]:
        """The bundle's wheel environment (built once per wheels CID), or None when it brings none.

        The staged ``wheels/`` must hold exactly what the manifest lists: a peer's record is
        hostile, and the count and byte bounds are checked again on what was really staged."""
        manifest = request.bundle.manifest
        if not manifest.wheels:
            yield None
            return
        assert self.wheel_envs is not None  # run() refused the bundle otherwise
        staged = scan_wheels(workspace.code)
        if staged != manifest.wheels:
            raise ManifestError(f"the bundle's {WHEELS_DIR}/ does not hold the wheels its manifest lists")
        entries = dict(list_directory(self.store.get, request.bundle.code))
        with self.wheel_envs.use(str(entries[WHEELS_DIR]), workspace.code / WHEELS_DIR, staged) as site:
            yield site

    def _release(
        self, terms: receipts.PrivateRelease, outcome: Outcome, result: CID | None
    ) -> tuple[Outcome, receipts.PrivateRelease]:
        """A private job's result leaves only within its policies' cap; a larger one is withheld (the job fails)."""
        size = (self.store.complete_dag_size(result) or 0) if result is not None else 0
        if result is None or not outcome.is_ok:
            return outcome, replace(terms, result_bytes=size, released="nothing")
        if size > terms.max_result_bytes:
            withheld = Outcome.failed(
                f"result withheld: {size} bytes, over the {terms.max_result_bytes}-byte cap of the private input's "
                "policy"
            )
            return withheld, replace(terms, result_bytes=size, released="nothing")
        return outcome, replace(terms, result_bytes=size, released="result")

    def _import(self, request: RunRequest, workspace: Workspace) -> tuple[Outcome, CID | None]:
        """Import ``out/``; output the importer cannot take is the agent's failure, not the node's."""
        problem = scan_tree([workspace.out]).problem
        if problem is not None:
            return Outcome.failed(f"invalid output: {problem}"), None
        try:
            options = ImportOptions(include_hidden=True)
            name, lease = f"result {request.job_id}", request.result_lease
            cid = add_path(self.store, workspace.out, options=options, name=name, lease=lease).cid
        except (UnixFSError, UnicodeError, RecursionError) as exc:
            return Outcome.failed(f"invalid output: {exc}"), None
        except OSError as exc:  # the store's disk, not the agent's output
            return Outcome.node_error(f"cannot store the output: {exc}"), None
        return Outcome.ok(), cid
