"""Shared helpers of the benchmarks: run cases in alternation, summarise as median and spread.

A shared, loaded machine drifts in speed over a run, so a figure and its baseline measured one
after the other can differ by the drift alone. Every bench therefore runs its cases in rounds,
each round running every case once in an order rotated from the last, and quotes the median
with the spread (min-max) over rounds; a ratio is taken round by round (a case against the
baseline of its own round) and its median quoted.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Spread:
    """Median and range of a set of samples."""

    median: float
    low: float
    high: float

    def show(self, digits: int = 1) -> str:
        """``12.3 (10.1-14.0)``: the median, then min-max."""
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def spread(samples: list[float]) -> Spread:
    if not samples:
        raise ValueError("no samples to summarise")
    return Spread(statistics.median(samples), min(samples), max(samples))


def ratios(ours: list[float], base: list[float]) -> Spread:
    """Round-by-round ratio ``ours[i] / base[i]``, summarised."""
    if len(ours) != len(base):
        raise ValueError(f"{len(ours)} samples against {len(base)} baseline samples")
    return spread([a / b for a, b in zip(ours, base, strict=True)])


def rotated(names: list[str], round_index: int) -> list[str]:
    """``names`` rotated by ``round_index``: each case leads in turn."""
    shift = round_index % len(names) if names else 0
    return names[shift:] + names[:shift]


def alternate(
    jobs: Mapping[str, Callable[[], T]],
    rounds: int,
    report: Callable[[int, str, T], None] | None = None,
) -> dict[str, list[T]]:
    """Run every job once per round, the order rotated each round; the samples per job, in round order."""
    names = list(jobs)
    samples: dict[str, list[T]] = {name: [] for name in names}
    for index in range(rounds):
        for name in rotated(names, index):
            sample = jobs[name]()
            samples[name].append(sample)
            if report is not None:
                report(index, name, sample)
    return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process and all its threads so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A live process's resident memory in MiB (``field`` of /proc/<pid>/status, e.g. VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_note() -> str:
    """The load the figures were taken under, to print next to them."""
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) at the end"


@contextlib.contextmanager
def code_of(tree: Path | None) -> Iterator[None]:
    """Nodes started inside run the code of ``tree`` (None: this checkout): ``python -m`` puts
    the working directory first on the path, so both it and PYTHONPATH point there."""
    if tree is None:
        yield
        return
    before, path = Path.cwd(), os.environ.get("PYTHONPATH")
    os.chdir(tree)
    os.environ["PYTHONPATH"] = str(tree)
    try:
        yield
    finally:
        os.chdir(before)
        if path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = path
