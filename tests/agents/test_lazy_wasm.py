"""The node's wasm runtime is built at its first wasm job, not at start, and then runs as before."""

from __future__ import annotations

from pathlib import Path

from agents.outcome import Outcome
from agents.runtime.lazy_wasm import LazyWasmRuntime
from agents.runtime.python import PythonRuntime
from agents.runtime.wasm import WasmRuntime
from tests.agents.harness import FIXTURES, AgentHarness


def test_it_answers_as_the_real_runtime_does_without_building_it(tmp_path: Path) -> None:
    lazy, real = LazyWasmRuntime(tmp_path / "lazy"), WasmRuntime(tmp_path / "real")
    assert (lazy.name, lazy.version, lazy.input_staging) == (real.name, real.version, real.input_staging)
    assert not lazy.built and not (tmp_path / "lazy").exists()


def test_the_first_job_builds_it_once_and_runs(tmp_path: Path) -> None:
    lazy = LazyWasmRuntime(tmp_path / "wasm-cache")
    harness = AgentHarness(tmp_path, lazy, PythonRuntime())  # type: ignore[arg-type]
    assert not lazy.built
    outcome = harness.run(FIXTURES / "hostile-wasm", "no-such-mode")  # an unknown mode: exits 2 at once
    assert lazy.built and outcome.outcome == Outcome.failed("exit code 2")
    built = lazy.runtime()
    harness.run(FIXTURES / "hostile-wasm", "no-such-mode")
    assert lazy.runtime() is built
