"""The ``wasm`` runtime: wasmtime, WASI preview 1, in process.

Isolation comes from WebAssembly itself: the module sees only the directories it is
given (``/in`` read-only, ``/out``), no sockets (WASI preview 1 has none), and no host
memory. Limits: fuel (instructions) for CPU, an epoch deadline for wall-clock time,
StoreLimits for memory, and a cap on captured stdout/stderr.

Compiled modules are cached on disk keyed by (module CID, engine settings, wasmtime
version). Deserialising a module runs native code, so the cache only loads artifacts
this node wrote itself: each carries an HMAC under a key that never leaves the node.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from importlib.metadata import version
from pathlib import Path

import wasmtime

from agents.runtime.base import LogBuffer, RawRun, RunRequest, Workspace
from storage.cid import CID, RAW

FUEL_PER_CPU_SECOND = 2_500_000_000  # fuel units; a tight loop burns ~3 G/s on this machine
EPOCH_TICK = 0.01
WASM_PAGE = 65536
_WASI_ENOTSUP = 58
_ENGINE_SETTINGS = "fuel=1;epoch=1;reservation=64MiB;guard=64KiB"


class WasmRuntime:
    name = "wasm"

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.version = f"wasmtime-{version('wasmtime')}"
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        # the default reserves 4 GiB of address space per memory and fails under RLIMIT_AS
        config.memory_reservation = 64 << 20
        config.memory_guard_size = 64 << 10
        self.engine = wasmtime.Engine(config)
        self._modules: dict[CID, wasmtime.Module] = {}
        self._lock = threading.Lock()
        self._cache_dir = cache_dir
        self._cache_key = self._load_cache_key() if cache_dir else b""
        self._ticker = threading.Thread(target=self._tick, name="wasm-epoch", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while True:
            time.sleep(EPOCH_TICK)
            self.engine.increment_epoch()

    # -- module cache ----------------------------------------------------------------
    def _load_cache_key(self) -> bytes:
        assert self._cache_dir is not None
        self._cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_file = self._cache_dir / "cache.key"
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
        return key_file.read_bytes()

    def _artifact_name(self, module_cid: CID) -> str:
        material = f"{module_cid}|{_ENGINE_SETTINGS}|{self.version}".encode()
        return hashlib.sha256(material).hexdigest() + ".cwasm"

    def module(self, module_cid: CID, wasm: bytes) -> wasmtime.Module:
        """A compiled module: from memory, from this node's own disk cache, or compiled now."""
        with self._lock:
            cached = self._modules.get(module_cid)
        if cached is not None:
            return cached
        if not module_cid.matches(wasm):
            raise ValueError(f"module bytes do not match {module_cid}")
        module = self._from_disk(module_cid) or self._compile(module_cid, wasm)
        with self._lock:
            self._modules[module_cid] = module
        return module

    def _from_disk(self, module_cid: CID) -> wasmtime.Module | None:
        if self._cache_dir is None:
            return None
        path = self._cache_dir / self._artifact_name(module_cid)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        tag, artifact = blob[:32], blob[32:]
        if not hmac.compare_digest(tag, hmac.new(self._cache_key, artifact, hashlib.sha256).digest()):
            path.unlink(missing_ok=True)  # not ours, or damaged: never load it
            return None
        return wasmtime.Module.deserialize(self.engine, artifact)

    def _compile(self, module_cid: CID, wasm: bytes) -> wasmtime.Module:
        module = wasmtime.Module(self.engine, wasm)
        if self._cache_dir is not None:
            artifact = module.serialize()
            tag = hmac.new(self._cache_key, artifact, hashlib.sha256).digest()
            path = self._cache_dir / self._artifact_name(module_cid)
            scratch = path.with_suffix(".tmp")
            scratch.write_bytes(tag + artifact)
            os.replace(scratch, path)
        return module

    def clear_memory_cache(self) -> None:
        with self._lock:
            self._modules.clear()

    def _linker(self) -> wasmtime.Linker:
        """WASI preview 1, except ``poll_oneoff``: a sleeping host call cannot be interrupted
        by the epoch deadline, so agents get ENOTSUP instead of a way to outlive their wall clock.
        """
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        linker.allow_shadowing = True
        i32 = wasmtime.ValType.i32()
        no_sleep = wasmtime.FuncType([i32, i32, i32, i32], [i32])
        linker.define_func("wasi_snapshot_preview1", "poll_oneoff", no_sleep, lambda *_: _WASI_ENOTSUP)
        return linker

    # -- running ---------------------------------------------------------------------
    def run(self, request: RunRequest, workspace: Workspace) -> RawRun:
        limits = request.effective_limits
        entry = workspace.code / request.bundle.manifest.entrypoint
        wasm = entry.read_bytes()
        module = self.module(CID.for_block(wasm, RAW), wasm)

        store = wasmtime.Store(self.engine)
        memory_limit = limits.memory_mib << 20
        store.set_limits(memory_size=memory_limit, instances=1, tables=4, memories=1)
        store.set_fuel(limits.cpu_seconds * FUEL_PER_CPU_SECOND)
        store.set_epoch_deadline(max(1, int(limits.wall_seconds / EPOCH_TICK)))
        logs = LogBuffer()
        wasi = wasmtime.WasiConfig()
        wasi.argv = [request.bundle.manifest.name, *request.args]
        wasi.env = [(key, value) for key, value in {**request.env, "MYCEL_IN": "/in", "MYCEL_OUT": "/out"}.items()]
        wasi.preopen_dir(str(workspace.inputs), "/in", fs_mutable=False)
        wasi.preopen_dir(str(workspace.out), "/out", fs_mutable=True)
        wasi.stdout_custom = logs.write
        wasi.stderr_custom = logs.write
        store.set_wasi(wasi)
        linker = self._linker()

        started, cpu_started = time.perf_counter(), time.thread_time()
        status: str = "ok"
        exit_code: int | None = 0
        instance = None
        try:
            instance = linker.instantiate(store, module)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
            status = "ok" if exc.code == 0 else f"failed: exit code {exc.code}"
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            exit_code = None
            status = _classify_trap(exc, _memory_size(instance, store), memory_limit)
        wall = time.perf_counter() - started
        return RawRun(
            status=status,
            exit_code=exit_code,
            logs=bytes(logs.data),
            logs_truncated=logs.truncated,
            cpu_seconds=time.thread_time() - cpu_started,
            peak_memory_bytes=_memory_size(instance, store),
            wall_seconds=wall,
        )


def _memory_size(instance: wasmtime.Instance | None, store: wasmtime.Store) -> int:
    if instance is None:
        return 0
    memory = instance.exports(store).get("memory")
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0


def _classify_trap(exc: Exception, memory_bytes: int, memory_limit: int) -> str:
    message = str(exc)
    if "all fuel consumed" in message:
        return "killed: cpu limit"
    if "interrupt" in message:
        return "killed: wall-clock limit"
    if memory_bytes + 16 * WASM_PAGE >= memory_limit or ("memory" in message and "limit" in message):
        return "killed: memory limit"
    first_line = " ".join(message.split())[:300] if message.strip() else type(exc).__name__
    return f"failed: trap: {first_line}"
