"""Fixtures for agent tests: both runtimes (python cold and warm) and a harness per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.runtime.python import PythonRuntime
from agents.runtime.wasm import WasmRuntime
from tests.agents.harness import AgentHarness


@pytest.fixture(scope="session")
def wasm_runtime(tmp_path_factory: pytest.TempPathFactory) -> WasmRuntime:
    return WasmRuntime(tmp_path_factory.mktemp("wasm-cache"))


@pytest.fixture(scope="session", params=["cold", "warm"])
def python_runtime(request: pytest.FixtureRequest) -> Iterator[PythonRuntime]:
    """Every python-runtime test runs twice: a fresh interpreter, and a fork of the warm worker."""
    runtime = PythonRuntime(warm=request.param == "warm")
    yield runtime
    runtime.close()


@pytest.fixture
def harness(tmp_path: Path, wasm_runtime: WasmRuntime, python_runtime: PythonRuntime) -> Iterator[AgentHarness]:
    h = AgentHarness(tmp_path, wasm_runtime, python_runtime)
    yield h
    h.store.close()
