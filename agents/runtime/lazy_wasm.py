"""The ``wasm`` runtime as a node offers it: built when the first wasm job runs.

Importing wasmtime and making its engine is ~10 MiB of memory and ~0.1 s of CPU, paid by
every node at start although many never run a wasm job (an idle node, one running only
Python agents). This stands in for :class:`agents.runtime.wasm.WasmRuntime` with what a
runtime must answer without running anything (its name, version and input staging), and
builds the real one, once, on the first run.
"""

from __future__ import annotations

import threading
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from agents.runtime.base import RawRun, RunRequest, Staging, Workspace

if TYPE_CHECKING:
    from agents.runtime.wasm import WasmRuntime


class LazyWasmRuntime:
    name = "wasm"
    input_staging = Staging.LINK  # as WasmRuntime's (tests/agents/test_lazy_wasm.py compares them)

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.version = f"wasmtime-{version('wasmtime')}"
        self._cache_dir = cache_dir
        self._lock = threading.Lock()  # jobs run on worker threads: two first runs build one runtime
        self._runtime: WasmRuntime | None = None

    @property
    def built(self) -> bool:
        return self._runtime is not None

    def runtime(self) -> WasmRuntime:
        """The real runtime, built by the first caller."""
        with self._lock:
            if self._runtime is None:
                from agents.runtime.wasm import WasmRuntime

                self._runtime = WasmRuntime(self._cache_dir)
            return self._runtime

    def run(self, request: RunRequest, workspace: Workspace) -> RawRun:
        return self.runtime().run(request, workspace)
