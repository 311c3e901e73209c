"""The input cache: inputs built once per CID, reused without copies, and never changed by an agent."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from agents.executor import JobOutcome
from agents.input_cache import MARKER, InputCache
from agents.outcome import Outcome
from agents.runtime.base import Staging
from agents.runtime.python import PythonRuntime
from agents.runtime.wasm import WasmRuntime
from node.config import ConfigError, load_config
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import BlockNotFoundError
from storage.files import add_path, cat
from storage.unixfs.exporter import list_directory
from tests.agents.harness import FIXTURES, AgentHarness

TAMPER = FIXTURES / "input-tamper"
CACHE_BYTES = 64 << 20


@pytest.fixture
def cached(tmp_path: Path, wasm_runtime: WasmRuntime, python_runtime: PythonRuntime) -> Iterator[AgentHarness]:
    """The agent harness with the node's input cache, as ``mycel node start`` wires it."""
    h = AgentHarness(tmp_path, wasm_runtime, python_runtime)
    h.executor.input_cache = InputCache(h.data_dir / "cache" / "inputs", h.store, CACHE_BYTES)
    yield h
    h.store.close()


@pytest.fixture
def wasm_cached(tmp_path: Path, wasm_runtime: WasmRuntime) -> Iterator[AgentHarness]:
    """As ``cached``, for wasm jobs only (no python runtime to run twice, cold and warm)."""
    h = AgentHarness(tmp_path, wasm_runtime, PythonRuntime(layers={"rlimits": "on"}))
    h.executor.input_cache = InputCache(h.data_dir / "cache" / "inputs", h.store, CACHE_BYTES)
    yield h
    h.store.close()


def _out(harness: AgentHarness, outcome: JobOutcome, name: str) -> object:
    assert outcome.outcome == Outcome.ok() and outcome.result is not None, (outcome.status, outcome.logs[-2000:])
    entries = dict(list_directory(harness.store.get, outcome.result))
    return json.loads(b"".join(cat(harness.store, entries[name])))


def _inputs(tmp_path: Path, harness: AgentHarness) -> tuple[dict[str, CID], dict[str, str]]:
    """A file input and a directory input of distinct random bytes, and their files' sha256."""
    blob = os.urandom(300_000)
    (tmp_path / "blob.bin").write_bytes(blob)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha\n")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(70_000))
    inputs = {"blob": harness.put(tmp_path / "blob.bin"), "tree": harness.put(tree)}
    hashes = {"blob": hashlib.sha256(blob).hexdigest()}
    for rel in ("a.txt", "sub/b.bin"):
        hashes[f"tree/{rel}"] = hashlib.sha256((tree / rel).read_bytes()).hexdigest()
    return inputs, hashes


def test_python_mounts_the_cached_inputs_and_a_second_job_rebuilds_nothing(
    cached: AgentHarness, tmp_path: Path
) -> None:
    assert cached.executor.runtimes["python"].input_staging is Staging.MOUNT  # type: ignore[attr-defined]
    inputs, hashes = _inputs(tmp_path, cached)
    cache = cached.executor.input_cache
    assert cache is not None
    first = _out(cached, cached.run(TAMPER, "hash", inputs=inputs), "hashes.json")
    second = _out(cached, cached.run(TAMPER, "hash", inputs=inputs), "hashes.json")
    assert first == second
    assert isinstance(first, dict) and first["hashes"] == hashes
    described = first["inputs"]
    assert described["blob"] == {"path": "blob", "cid": str(inputs["blob"]), "kind": "file", "size": 300_000}
    assert described["tree"]["kind"] == "directory" and described["tree"]["size"] == 6 + 70_000
    assert cache.builds == 2  # one per input CID, none for the second job
    assert {entry.cid for entry in cache.entries()} == {str(cid) for cid in inputs.values()}
    assert not list((cached.root).glob("job-*"))  # workspaces gone; the cache stays


def test_a_hostile_python_agent_cannot_change_its_cached_input(cached: AgentHarness, tmp_path: Path) -> None:
    inputs, hashes = _inputs(tmp_path, cached)
    attempts = _out(cached, cached.run(TAMPER, "tamper", inputs=inputs), "attempts.json")
    assert isinstance(attempts, dict) and len(attempts) == 3 * 8 + 2 * 2
    succeeded = [label for label, result in attempts.items() if result == "SUCCEEDED"]
    assert not succeeded, attempts
    after = _out(cached, cached.run(TAMPER, "hash", inputs=inputs), "hashes.json")
    assert isinstance(after, dict) and after["hashes"] == hashes
    _assert_intact(cached, inputs, hashes)


def _assert_intact(harness: AgentHarness, inputs: dict[str, CID], hashes: dict[str, str]) -> None:
    """The cache itself, read on the host: the same bytes, names and read-only modes."""
    cache = harness.executor.input_cache
    assert cache is not None
    by_cid = {entry.cid: entry for entry in cache.entries()}
    blob, tree = by_cid[str(inputs["blob"])], by_cid[str(inputs["tree"])]
    assert hashlib.sha256(blob.path.read_bytes()).hexdigest() == hashes["blob"]
    assert sorted(p.name for p in tree.path.iterdir()) == ["a.txt", "sub"]
    for rel in ("a.txt", "sub/b.bin"):
        assert hashlib.sha256((tree.path / rel).read_bytes()).hexdigest() == hashes[f"tree/{rel}"]
    for path in (blob.path, tree.path / "a.txt", tree.path / "sub" / "b.bin"):
        assert path.stat().st_mode & 0o777 == 0o444, path


def test_without_a_mount_namespace_each_job_gets_its_own_copy(tmp_path: Path) -> None:
    """Without namespaces a shared inode could be chmodded and rewritten by the agent (same
    uid; Landlock does not govern chmod): the job gets a private copy, and the cache stays whole."""
    layers = {name: state for name, state in PythonRuntime().layers.items() if name != "namespaces"}
    runtime = PythonRuntime(layers=layers)
    assert runtime.input_staging is Staging.COPY
    h = AgentHarness(tmp_path, WasmRuntime(), runtime)
    h.executor.input_cache = InputCache(h.data_dir / "cache" / "inputs", h.store, CACHE_BYTES)
    inputs, hashes = _inputs(tmp_path, h)
    _out(h, h.run(TAMPER, "tamper", inputs=inputs), "attempts.json")
    after = _out(h, h.run(TAMPER, "hash", inputs=inputs), "hashes.json")
    assert isinstance(after, dict) and after["hashes"] == hashes
    _assert_intact(h, inputs, hashes)
    assert h.executor.input_cache.builds == 2
    h.store.close()


# A WASI module that tries to change /in/data: open it for writing with truncation,
# truncate it through a read-only descriptor, unlink it, rename it. Exits 3 when every
# attempt was refused, 1 when any succeeded, 2 when it cannot even read the input.
_TAMPER_WAT = """
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $set_size (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file" (func $unlink (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename" (func $rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "data")
  (data (i32.const 16) "moved")
  (func (export "_start")
    (local $succeeded i32)
    ;; the control: /in/data opens for reading (else fd 3 is not /in and nothing below means anything)
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64))
      (then (call $exit (i32.const 2))))
    ;; O_TRUNC with FD_WRITE | FD_FILESTAT_SET_SIZE rights
    (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 8)
                   (i64.const 4194368) (i64.const 0) (i32.const 0) (i32.const 64)))
      (then (local.set $succeeded (i32.const 1))))
    ;; opened for reading (FD_READ | FD_FILESTAT_SET_SIZE asked), then truncated to 0
    (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 0)
                   (i64.const 4194306) (i64.const 0) (i32.const 0) (i32.const 64)))
      (then (if (i32.eqz (call $set_size (i32.load (i32.const 64)) (i64.const 0)))
              (then (local.set $succeeded (i32.const 1))))))
    (if (i32.eqz (call $unlink (i32.const 3) (i32.const 0) (i32.const 4)))
      (then (local.set $succeeded (i32.const 1))))
    (if (i32.eqz (call $rename (i32.const 3) (i32.const 0) (i32.const 4) (i32.const 3) (i32.const 16) (i32.const 5)))
      (then (local.set $succeeded (i32.const 1))))
    (call $exit (select (i32.const 1) (i32.const 3) (local.get $succeeded)))))
"""


def test_a_hostile_wasm_agent_cannot_change_its_cached_input(wasm_cached: AgentHarness, tmp_path: Path) -> None:
    cached = wasm_cached
    bundle = tmp_path / "wasm-tamper"
    bundle.mkdir()
    (bundle / "tamper.wasm").write_bytes(wasmtime.wat2wasm(_TAMPER_WAT))
    (bundle / "mycel-agent.toml").write_text(
        'name = "wasm-tamper"\nversion = "0.0.1"\nruntime = "wasm"\nentrypoint = "tamper.wasm"\n'
    )
    blob = os.urandom(200_000)
    (tmp_path / "blob.bin").write_bytes(blob)
    inputs = {"data": cached.put(tmp_path / "blob.bin")}
    for _ in range(2):  # the second run sees the same, linked, untouched entry
        outcome = cached.run(bundle, inputs=inputs)
        assert outcome.outcome == Outcome.failed("exit code 3"), (outcome.status, outcome.logs)
    cache = cached.executor.input_cache
    assert cache is not None and cache.builds == 1
    (entry,) = cache.entries()
    assert hashlib.sha256(entry.path.read_bytes()).hexdigest() == hashlib.sha256(blob).hexdigest()
    assert entry.path.stat().st_nlink == 1  # the job's hard link went with its workspace


def _cache(tmp_path: Path, max_bytes: int = CACHE_BYTES) -> tuple[BlockStore, InputCache]:
    store = BlockStore(tmp_path / "blocks", map_size=64 << 20)
    return store, InputCache(tmp_path / "cache", store, max_bytes)


def _put(store: BlockStore, tmp_path: Path, name: str, size: int) -> tuple[CID, bytes]:
    data = os.urandom(size)
    (tmp_path / name).write_bytes(data)
    return add_path(store, tmp_path / name).cid, data


def _used(cache: InputCache, cid: CID) -> bytes:
    with cache.use(cid) as entry:
        return entry.path.read_bytes()


def test_a_half_built_entry_is_never_used_and_is_rebuilt(tmp_path: Path) -> None:
    store, cache = _cache(tmp_path)
    cid, data = _put(store, tmp_path, "a.bin", 100_000)
    assert _used(cache, cid) == data
    good = cache.root / str(cid)
    # a crash mid-build: a scratch dir, and an entry whose marker was never written
    other, other_data = _put(store, tmp_path, "b.bin", 50_000)
    (cache.root / f".build-{other}-deadbeef").mkdir()
    (cache.root / str(other)).mkdir()
    (cache.root / str(other) / "data").write_bytes(other_data[:10])
    (cache.root / "not-a-cid").mkdir()
    restarted = InputCache(cache.root, store, CACHE_BYTES)
    assert [entry.cid for entry in restarted.entries()] == [str(cid)]
    assert sorted(p.name for p in cache.root.iterdir()) == [str(cid)]
    assert _used(restarted, other) == other_data and restarted.builds == 1
    assert _used(restarted, cid) == data and restarted.builds == 1  # the good entry was kept
    assert (good / MARKER).is_file()


def test_eviction_is_least_recently_used_by_size_and_spares_entries_in_use(tmp_path: Path) -> None:
    size = 100_000
    store, cache = _cache(tmp_path, max_bytes=2 * size + size // 2)
    a, b, c = (_put(store, tmp_path, name, size)[0] for name in ("a", "b", "c"))
    for cid in (a, b, a, c):
        _used(cache, cid)
    assert [entry.cid for entry in cache.entries()] == [str(a), str(c)]  # b was least recently used
    assert not (cache.root / str(b)).exists()
    small = InputCache(cache.root, store, max_bytes=size // 2)  # smaller than any one entry
    with small.use(a) as held:
        _used(small, b)  # built, used, and gone at once: a is held, b is idle
        assert held.path.read_bytes() and (small.root / str(a)).is_dir()
        assert [entry.cid for entry in small.entries()] == [str(a)]
    assert small.entries() == [] and small.total_bytes == 0  # a went when its job let go


def test_two_jobs_over_one_new_input_build_it_once(tmp_path: Path) -> None:
    store, cache = _cache(tmp_path)
    cid, data = _put(store, tmp_path, "a.bin", 2 << 20)
    seen: list[bytes] = []
    threads = [threading.Thread(target=lambda: seen.append(_used(cache, cid))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [data] * 4 and cache.builds == 1


def test_collected_blocks_take_their_cache_entry_with_them(tmp_path: Path) -> None:
    store, cache = _cache(tmp_path)
    cid, data = _put(store, tmp_path, "a.bin", 600_000)  # several blocks
    assert _used(cache, cid) == data
    store.unpin(cid)
    assert store.gc().removed_blocks > 0
    with pytest.raises(BlockNotFoundError):
        _used(cache, cid)
    assert cache.entries() == [] and not (cache.root / str(cid)).exists()


def test_entries_of_collected_blocks_go_at_restart_and_before_a_valid_one_is_evicted(tmp_path: Path) -> None:
    size = 100_000
    store, cache = _cache(tmp_path, max_bytes=2 * size + size // 2)
    a, b, c = (_put(store, tmp_path, name, size)[0] for name in ("a", "b", "c"))
    for cid in (a, b):
        _used(cache, cid)
    store.unpin(b)  # b is the most recently used, but its blocks go
    store.gc()
    _used(cache, c)  # over the bound: b goes (collected), not a (least recently used, still valid)
    assert [entry.cid for entry in cache.entries()] == [str(a), str(c)]
    store.unpin(a)
    store.gc()
    restarted = InputCache(cache.root, store, CACHE_BYTES)
    _used(restarted, c)
    assert [entry.cid for entry in restarted.entries()] == [str(c)] and not (cache.root / str(a)).exists()


def test_the_cache_bound_is_a_positive_setting() -> None:
    assert load_config().get("jobs", "input_cache_mib") == 8192
    with pytest.raises(ConfigError, match=r"jobs\.input_cache_mib must be positive"):
        load_config(overrides={"jobs.input_cache_mib": 0})
