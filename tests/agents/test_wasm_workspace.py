"""A wasm job's workspace holds only what the agent sees (/in, /out): the bundle is never
exported to disk, and a warm run reads no module bytes (the per-job cost of a trivial job)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import nacl.signing
import pytest

from agents.bundle import Bundle, pack
from agents.executor import Executor
from agents.runtime.base import RawRun, RunRequest, Workspace
from agents.runtime.wasm import WasmRuntime
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.files import add_path
from tests.agents.harness import EXAMPLES


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlockStore]:
    with BlockStore(tmp_path / "blocks", map_size=16 << 20) as opened:
        yield opened


def _job(store: BlockStore, tmp_path: Path) -> tuple[Bundle, dict[str, CID]]:
    (tmp_path / "text.txt").write_text("one two two\n")
    return pack(EXAMPLES / "wasm-wordcount", store), {"text": add_path(store, tmp_path / "text.txt").cid}


def test_a_wasm_workspace_has_no_code_and_no_scratch_directory(store: BlockStore, tmp_path: Path) -> None:
    runtime = WasmRuntime(tmp_path / "cache")
    seen: list[list[str]] = []
    run = runtime.run

    def looked(request: RunRequest, workspace: Workspace) -> RawRun:
        seen.append(sorted(os.listdir(workspace.root)))
        return run(request, workspace)

    runtime.run = looked  # type: ignore[method-assign]
    executor = Executor(store, {"wasm": runtime}, nacl.signing.SigningKey.generate(), tmp_path)
    bundle, inputs = _job(store, tmp_path)
    outcome = executor.run(RunRequest("job-1", bundle, inputs))
    assert outcome.outcome.is_ok, outcome.outcome
    assert seen == [["in", "out"]]


def test_a_warm_wasm_run_reads_no_block_of_its_bundle(store: BlockStore, tmp_path: Path) -> None:
    executor = Executor(store, {"wasm": WasmRuntime(tmp_path / "cache")}, nacl.signing.SigningKey.generate(), tmp_path)
    bundle, inputs = _job(store, tmp_path)
    first = executor.run(RunRequest("job-1", bundle, inputs))
    code_blocks = {cid for cid, _ in store.walk(bundle.code)}
    read: list[CID] = []
    get = store.get

    def counted(cid: CID, *, verify: bool | None = None) -> bytes:
        read.append(cid)
        return get(cid, verify=verify)

    store.get = counted  # type: ignore[method-assign]
    second = executor.run(RunRequest("job-2", bundle, inputs))
    assert second.outcome.is_ok and second.result == first.result
    assert not code_blocks & set(read)


def test_an_entrypoint_that_is_not_a_file_of_the_bundle_fails_the_job(store: BlockStore, tmp_path: Path) -> None:
    """The module is read from the store now, not from an exported code/: a bundle whose
    entrypoint names a directory (a peer's record is hostile) is the agent's failure."""
    executor = Executor(store, {"wasm": WasmRuntime(tmp_path / "cache")}, nacl.signing.SigningKey.generate(), tmp_path)
    bundle, inputs = _job(store, tmp_path)
    broken = Bundle(bundle.agent_id, bundle.code, replace(bundle.manifest, entrypoint="missing.wasm"))
    outcome = executor.run(RunRequest("job-1", broken, inputs))
    assert not outcome.outcome.is_ok and "entrypoint" in outcome.outcome.detail
