"""The wasm epoch ticker runs only while a wasm job runs: an idle node's runtime never wakes up for it."""

from __future__ import annotations

from agents.manifest import Limits
from agents.outcome import Limit, Outcome
from agents.runtime.wasm import WasmRuntime
from tests.agents.harness import FIXTURES, AgentHarness


def test_a_fresh_runtime_starts_no_ticker_thread() -> None:
    runtime = WasmRuntime()
    assert runtime._ticker._thread is None and not runtime._ticker.ticking


def test_the_epoch_deadline_still_fires_and_the_ticker_stops_after(
    harness: AgentHarness, wasm_runtime: WasmRuntime
) -> None:
    limits = Limits(cpu_seconds=60, memory_mib=32, wall_seconds=1, max_output_mib=1)
    outcome = harness.run(FIXTURES / "hostile-wasm", "spin", limits=limits)
    assert outcome.outcome == Outcome.killed(Limit.WALL) or outcome.outcome.limit is Limit.WALL
    assert not wasm_runtime._ticker.ticking
