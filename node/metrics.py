"""Prometheus metrics, kept as plain counters (thread-safe enough: ints under the GIL)."""

from __future__ import annotations

import threading
from collections import defaultdict


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.gauges: dict[str, float] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            self.counters[(name, tuple(sorted(labels.items())))] += amount

    def set(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def observe(self, route: str, seconds: float) -> None:
        with self._lock:
            self.latency_sum[route] += seconds
            self.latency_count[route] += 1

    def value(self, name: str, **labels: str) -> float:
        return self.counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for (name, labels), value in sorted(self.counters.items()):
                lines.append(f"mycel_{name}{_labels(labels)} {_number(value)}")
            for name, value in sorted(self.gauges.items()):
                lines.append(f"mycel_{name} {_number(value)}")
            for route in sorted(self.latency_count):
                label = _labels((("route", route),))
                lines.append(f"mycel_http_request_seconds_sum{label} {self.latency_sum[route]:.6f}")
                lines.append(f"mycel_http_request_seconds_count{label} {self.latency_count[route]}")
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{value}"' for key, value in labels)
    return "{" + inner + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"
