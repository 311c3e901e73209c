"""bench/stats.py: the alternation and the round-by-round figures every bench quotes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.stats import Spread, alternate, code_of, ratios, rotated, spread


def test_alternate_rotates_the_order_each_round() -> None:
    calls: list[str] = []

    def job(name: str) -> int:
        calls.append(name)
        return len(calls)

    jobs = {name: (lambda name=name: job(name)) for name in "abc"}
    samples = alternate(jobs, 4)
    assert calls == list("abcbcacababc")
    assert samples == {"a": [1, 6, 8, 10], "b": [2, 4, 9, 11], "c": [3, 5, 7, 12]}


def test_rotated_leads_with_each_case_in_turn() -> None:
    assert [rotated(["x", "y"], i)[0] for i in range(4)] == ["x", "y", "x", "y"]
    assert rotated([], 3) == []


def test_ratios_pair_each_round_with_its_own_baseline() -> None:
    # the baseline drifts 2x over the run; paired by round, the ratio does not
    assert ratios([10.0, 20.0, 40.0], [20.0, 40.0, 80.0]) == Spread(0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="2 samples against 3"):
        ratios([1.0, 2.0], [1.0, 2.0, 3.0])


def test_spread_is_median_and_range() -> None:
    figure = spread([3.0, 1.0, 10.0])
    assert figure == Spread(3.0, 1.0, 10.0)
    assert figure.show(1) == "3.0 (1.0-10.0)"
    with pytest.raises(ValueError):
        spread([])


def test_code_of_points_node_starts_at_another_tree_and_puts_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    here = Path.cwd()
    with pytest.raises(RuntimeError), code_of(tmp_path):
        assert Path.cwd() == tmp_path and os.environ["PYTHONPATH"] == str(tmp_path)
        raise RuntimeError("a bench that fails midway")
    assert Path.cwd() == here and "PYTHONPATH" not in os.environ
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    with code_of(None):  # this checkout: nothing changes
        assert Path.cwd() == here and os.environ["PYTHONPATH"] == "/elsewhere"
    with code_of(tmp_path):
        pass
    assert os.environ["PYTHONPATH"] == "/elsewhere"
