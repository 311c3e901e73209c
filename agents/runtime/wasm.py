"""The ``wasm`` runtime: wasmtime, WASI preview 1, in process.

Isolation comes from WebAssembly itself: the module sees only the directories it is
given (``/in`` read-only, ``/out``), no sockets (WASI preview 1 has none), and no host
memory. Limits: fuel (instructions) for CPU; StoreLimits for memory and table elements;
an epoch-deadline callback every tick that stops the run at the wall-clock deadline, on
cancel, or when the output walk finds ``/out`` over its caps; and a cap on captured
stdout/stderr. The outcome comes from the trap code and the node's own reasons for
stopping, never from a trap's message text.

Modules are compiled in a child process (see :mod:`agents.runtime.wasm_compiler`) so a
slow compile counts against the wall-clock limit and can be killed. Compiled modules
are cached on disk keyed by (module CID, engine settings, wasmtime version).
Deserialising a module runs native code, so the cache only loads artifacts this node
wrote itself: each carries an HMAC under a key that never leaves the node.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from agents.errors import CompileCancelled, CompilerFailed, CompileTimeout, InvalidModule
from agents.outcome import Limit, Outcome
from agents.runtime.base import LogBuffer, OutputWatch, RawRun, RunRequest, Staging, Workspace
from agents.runtime.wasm_compiler import ENGINE_SETTINGS, EXIT_INVALID, make_engine
from storage.cid import CID, RAW
from storage.errors import UnixFSError

FUEL_PER_CPU_SECOND = 2_500_000_000  # fuel units; a tight loop burns ~3 G/s on this machine
EPOCH_TICK = 0.002  # also how often the stop callback walks /out: bytes past the cap ~ write rate x tick
WASM_PAGE = 65536
MAX_TABLE_ELEMENTS = 1_000_000  # 8 bytes each: 8 MB of tables at most, beside the memory limit
COMPILE_POLL = 0.02
COMPILER = Path(__file__).with_name("wasm_compiler.py")
_WASI_ENOTSUP = 58
_ENGINE_SETTINGS = ENGINE_SETTINGS
_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
_DeadlineCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


class EpochTicker:
    """Advances the engine's epoch every EPOCH_TICK while at least one run is in progress.

    An idle node has no wasm run to stop, so the thread then sleeps on a condition instead
    of waking 500 times a second (it was the largest part of an idle node's CPU time).
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._active = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        with self._wake:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wasm-epoch", daemon=True)
                self._thread.start()
            self._wake.notify()

    def end(self) -> None:
        with self._wake:
            self._active -= 1

    @property
    def ticking(self) -> bool:
        with self._wake:
            return self._active > 0

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._active > 0)
            time.sleep(EPOCH_TICK)
            self._engine.increment_epoch()


class WasmRuntime:
    name = "wasm"
    # cached inputs as hard links under the read-only /in preopen: WASI has no chmod, and a
    # read-only preopen refuses every write, truncation, unlink and rename
    input_staging = Staging.LINK
    # the module is read from the store and compiled here; the agent sees only /in and /out
    stages_code = False
    uses_scratch = False

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.version = f"wasmtime-{version('wasmtime')}"
        self.engine = make_engine()
        self._modules: dict[CID, wasmtime.Module] = {}
        # (bundle code CID, entrypoint) -> its module: a content-addressed bundle's entrypoint
        # never changes, so a warm run reads and hashes no module bytes at all
        self._entries: dict[tuple[CID, str], wasmtime.Module] = {}
        self._lock = threading.Lock()
        self._cache_dir = cache_dir
        self._cache_key = self._load_cache_key() if cache_dir else b""
        self._ticker = EpochTicker(self.engine)
        self._linkers = threading.local()  # one per worker thread, made at its first run, then reused

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

    def module(
        self, module_cid: CID, wasm: bytes, timeout: float | None = None, cancel: threading.Event | None = None
    ) -> wasmtime.Module:
        """A compiled module: from memory, from this node's own disk cache, or compiled now.

        Compiling raises InvalidModule, CompileTimeout after ``timeout`` seconds, or
        CompileCancelled once ``cancel`` is set.
        """
        with self._lock:
            cached = self._modules.get(module_cid)
        if cached is not None:
            return cached
        if not module_cid.matches(wasm):
            raise ValueError(f"module bytes do not match {module_cid}")
        module = self._from_disk(module_cid) or self._compile(module_cid, wasm, timeout, cancel)
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

    def _compile(
        self, module_cid: CID, wasm: bytes, timeout: float | None = None, cancel: threading.Event | None = None
    ) -> wasmtime.Module:
        with tempfile.TemporaryDirectory(prefix="wasm-compile-") as scratch:
            source, target = Path(scratch) / "module.wasm", Path(scratch) / "module.cwasm"
            source.write_bytes(wasm)
            artifact = _compile_in_child(source, target, timeout, cancel)
        module = wasmtime.Module.deserialize(self.engine, artifact)
        if self._cache_dir is not None:
            tag = hmac.new(self._cache_key, artifact, hashlib.sha256).digest()
            path = self._cache_dir / self._artifact_name(module_cid)
            partial = path.with_suffix(".tmp")
            partial.write_bytes(tag + artifact)
            os.replace(partial, path)
        return module

    def clear_memory_cache(self) -> None:
        with self._lock:
            self._modules.clear()
            self._entries.clear()

    def _linker(self) -> wasmtime.Linker:
        """WASI preview 1, except ``poll_oneoff``: a sleeping host call cannot be interrupted
        by the epoch deadline, so agents get ENOTSUP instead of a way to outlive their wall clock.

        A linker holds definitions only (no store, no instance), so one serves every run of
        its thread: building it (the WASI imports, the host function) was a visible part of a
        trivial job's CPU."""
        linker: wasmtime.Linker | None = getattr(self._linkers, "linker", None)
        if linker is None:
            linker = self._linkers.linker = self._new_linker()
        return linker

    def _new_linker(self) -> wasmtime.Linker:
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
        entrypoint = request.bundle.manifest.entrypoint
        started, cpu_started = time.perf_counter(), time.thread_time()
        deadline = time.monotonic() + limits.wall_seconds
        key = (request.bundle.code, entrypoint)
        with self._lock:
            module = self._entries.get(key)
        wasm: bytes | None = None
        if module is None:
            try:
                wasm = workspace.code_bytes(entrypoint)
            except (UnixFSError, OSError) as exc:
                return _not_started(Outcome.failed(f"cannot read the entrypoint: {exc}"), started)
            try:
                module = self.module(CID.for_block(wasm, RAW), wasm, limits.wall_seconds, request.cancel)
            except InvalidModule as exc:
                return _not_started(Outcome.failed(f"invalid module: {exc}"), started)
            except CompileTimeout:
                return _not_started(Outcome.killed(Limit.WALL, "compiling the module"), started)
            except CompileCancelled:
                return _not_started(Outcome.cancelled(), started)
            except CompilerFailed as exc:
                return _not_started(Outcome.node_error(str(exc)), started)
            with self._lock:
                self._entries[key] = module

        store = wasmtime.Store(self.engine)
        logs = LogBuffer()
        instance: wasmtime.Instance | None = None
        stopper = _Stopper(deadline, request.cancel, OutputWatch((workspace.out,), limits))
        memory_limit = limits.memory_mib << 20
        self._ticker.begin()  # the epoch ticks only while a run needs its deadline checked
        try:
            store.set_limits(
                memory_size=memory_limit, table_elements=MAX_TABLE_ELEMENTS, instances=1, tables=4, memories=1
            )
            store.set_fuel(limits.cpu_seconds * FUEL_PER_CPU_SECOND)
            stopper.install(store)
            wasi = wasmtime.WasiConfig()
            wasi.argv = [request.bundle.manifest.name, *request.args]
            wasi.env = [(key, value) for key, value in {**request.env, "MYCEL_IN": "/in", "MYCEL_OUT": "/out"}.items()]
            wasi.preopen_dir(str(workspace.inputs), "/in", fs_mutable=False)
            wasi.preopen_dir(str(workspace.out), "/out", fs_mutable=True)
            wasi.stdout_custom = logs.write
            wasi.stderr_custom = logs.write
            store.set_wasi(wasi)
            exit_code: int | None = 0
            try:
                instance = self._linker().instantiate(store, module)
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                wasm = wasm if wasm is not None else workspace.code_bytes(entrypoint)  # the module read it once
                outcome = stopper.reason or _instantiation_failure(wasm, exc, memory_limit)
                exit_code = None
            else:
                outcome, exit_code = _call_start(instance, store, stopper, memory_limit)
            peak = _memory_size(instance, store)
        finally:
            # free the store now, while the interpreter is whole: a trapped store left to
            # the garbage collector was dropped at exit and wasmtime's threads aborted it
            store.close()
            stopper.close()
            self._ticker.end()
        return RawRun(
            outcome=outcome,
            exit_code=exit_code,
            logs=bytes(logs.data),
            logs_truncated=logs.truncated,
            cpu_seconds=time.thread_time() - cpu_started,
            peak_memory_bytes=peak,
            wall_seconds=time.perf_counter() - started,
        )


class _Stopper:
    """The store's epoch-deadline callback: each tick it decides whether the run goes on.

    It stops the run (by returning an error, which wasmtime raises as a trap) at the
    wall-clock deadline, on cancel, or when ``/out`` is over its caps, and records why,
    so the outcome never depends on the text wasmtime puts in the error.
    """

    def __init__(self, deadline: float, cancel: threading.Event | None, output: OutputWatch) -> None:
        self.deadline = deadline
        self.cancel = cancel
        self.output = output
        self.reason: Outcome | None = None
        self._callback = _DeadlineCallback(self._on_tick)

    def install(self, store: wasmtime.Store) -> None:
        store.set_epoch_deadline(1)
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, None, _NO_FINALIZER)

    def _on_tick(self, _context: Any, _data: Any, delta: Any, kind: Any) -> int:
        try:
            self.reason = self.reason or self._check()
        except Exception as exc:  # an exception must not unwind into wasmtime
            self.reason = Outcome.node_error(f"the run's watcher failed: {exc}")
        if self.reason is not None:
            error = ffi.wasmtime_error_new(self.reason.label.encode())
            return int(ctypes.cast(error, ctypes.c_void_p).value or 0)
        delta[0] = 1
        kind[0] = _CONTINUE
        return 0

    def _check(self) -> Outcome | None:
        if self.cancel is not None and self.cancel.is_set():
            return Outcome.cancelled()
        if time.monotonic() > self.deadline:
            return Outcome.killed(Limit.WALL)
        return self.output.check()

    def close(self) -> None:
        self.cancel = None


def _call_start(
    instance: wasmtime.Instance, store: wasmtime.Store, stopper: _Stopper, memory_limit: int
) -> tuple[Outcome, int | None]:
    start = instance.exports(store).get("_start")
    if not isinstance(start, wasmtime.Func):
        return Outcome.failed("the module exports no _start function"), None
    try:
        start(store)
    except wasmtime.ExitTrap as exc:
        if stopper.reason is not None:
            return stopper.reason, None
        return (Outcome.ok() if exc.code == 0 else Outcome.failed(f"exit code {exc.code}")), exc.code
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        return stopper.reason or _classify_trap(exc, _memory_size(instance, store), memory_limit), None
    return stopper.reason or Outcome.ok(), 0


def _not_started(outcome: Outcome, started: float) -> RawRun:
    return RawRun(outcome, None, b"", False, 0.0, 0, time.perf_counter() - started)


def _compile_in_child(source: Path, target: Path, timeout: float | None, cancel: threading.Event | None) -> bytes:
    deadline = None if timeout is None else time.monotonic() + timeout
    child = subprocess.Popen(
        [sys.executable, "-I", str(COMPILER), str(source), str(target)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while True:
            try:
                _, errors = child.communicate(timeout=COMPILE_POLL)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    raise CompileCancelled("cancelled while compiling") from None
                if deadline is not None and time.monotonic() > deadline:
                    raise CompileTimeout(f"compiling took more than {timeout} s") from None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode == EXIT_INVALID:
        raise InvalidModule(errors.decode("utf-8", "replace").strip() or "the module does not compile")
    if child.returncode != 0:
        raise CompilerFailed(f"the wasm compiler exited with {child.returncode}: {errors[-500:]!r}")
    return target.read_bytes()


def _memory_size(instance: wasmtime.Instance | None, store: wasmtime.Store) -> int:
    if instance is None:
        return 0
    memory = instance.exports(store).get("memory")
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0


def _instantiation_failure(wasm: bytes, exc: Exception, memory_limit: int) -> Outcome:
    """Over a limit when the module itself declares more memory or table than allowed."""
    try:
        tables, memories = declared_minimums(wasm)
    except (IndexError, ValueError):
        tables, memories = [], []
    for pages in memories:
        if pages * WASM_PAGE > memory_limit:
            return Outcome.killed(Limit.MEMORY, f"the module declares {pages * WASM_PAGE >> 20} MiB")
    for elements in tables:
        if elements > MAX_TABLE_ELEMENTS:
            return Outcome.killed(Limit.MEMORY, f"the module declares a table of {elements} elements")
    return Outcome.failed(f"cannot instantiate: {_one_line(exc)}")


def declared_minimums(wasm: bytes) -> tuple[list[int], list[int]]:
    """Minimum sizes of the tables (elements) and memories (pages) a module defines.

    Read from the binary's table (4) and memory (5) sections, since wasmtime only shows
    exported ones. Only called on a module wasmtime has already validated.
    """
    tables: list[int] = []
    memories: list[int] = []
    position = 8  # magic and version
    while position < len(wasm):
        section = wasm[position]
        size, position = _leb(wasm, position + 1)
        end = position + size
        if section in (4, 5):
            count, cursor = _leb(wasm, position)
            for _ in range(count):
                if section == 4:
                    cursor += 1  # reference type
                flags = wasm[cursor]
                minimum, cursor = _leb(wasm, cursor + 1)
                if flags & 1:
                    _, cursor = _leb(wasm, cursor)
                (tables if section == 4 else memories).append(minimum)
        position = end
    return tables, memories


def _leb(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _classify_trap(exc: Exception, memory_bytes: int, memory_limit: int) -> Outcome:
    code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
    if code is wasmtime.TrapCode.OUT_OF_FUEL:
        return Outcome.killed(Limit.CPU)
    if code is wasmtime.TrapCode.INTERRUPT:
        return Outcome.killed(Limit.WALL)
    if memory_bytes + 16 * WASM_PAGE >= memory_limit:  # it grew to the limit, then failed
        return Outcome.killed(Limit.MEMORY)
    return Outcome.failed(f"trap: {_one_line(exc)}")


def _one_line(exc: Exception) -> str:
    message = str(exc)
    return " ".join(message.split())[:300] if message.strip() else type(exc).__name__
