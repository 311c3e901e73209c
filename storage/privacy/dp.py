"""Differential-privacy terms of a federated run, and the privacy loss they spend.

A group job may carry ``dp``: each site's model update is clipped to L2 norm ``clip`` and
Gaussian noise of standard deviation ``noise_multiplier * clip`` is added before it leaves
the site (site-level DP of the update; the site's sample count is released as is). The node
gives these terms to every run (as arguments, :meth:`DpTerms.args`, which the client's access
proof signs like any argument) and records the loss they spend from the terms alone, never
from what an agent reports. The accounting is zero-concentrated DP: one Gaussian release with
sensitivity ``clip`` and noise ``z * clip`` is rho = 1 / (2 z^2)-zCDP; k releases compose to
k * rho, which converts to (epsilon, delta)-DP with epsilon = k rho + 2 sqrt(k rho ln(1 / delta))
(Bun and Steinke, 2016): valid for every z, unlike the classic epsilon < 1 bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from storage.privacy import schema

CLIP_MAX = 1e6
NOISE_MIN, NOISE_MAX = 1e-3, 1e3
DELTA_MAX = 0.1


def _number(record: dict[str, Any], name: str, low: float, high: float, low_open: bool = False) -> float:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise schema.bad(f"dp.{name} must be a number")
    value = float(value)
    if not (low < value if low_open else low <= value) or not value <= high or math.isnan(value):
        raise schema.bad(f"dp.{name} must be in {'(' if low_open else '['}{low:g}, {high:g}]")
    return value


@dataclass(frozen=True)
class DpTerms:
    clip: float  # L2 bound on one site's model update
    noise_multiplier: float  # the Gaussian noise's standard deviation, in units of clip
    delta: float = 1e-5

    @classmethod
    def from_record(cls, record: Any) -> DpTerms:
        if not isinstance(record, dict):
            raise schema.bad("dp must be a map of clip, noise_multiplier and delta")
        schema.exact_fields(record, frozenset({"clip", "noise_multiplier"}), frozenset({"delta"}))
        return cls(
            _number(record, "clip", 0.0, CLIP_MAX, low_open=True),
            _number(record, "noise_multiplier", NOISE_MIN, NOISE_MAX),
            _number({"delta": record.get("delta", 1e-5)}, "delta", 0.0, DELTA_MAX, low_open=True),
        )

    def record(self) -> dict[str, float]:
        return {"clip": self.clip, "noise_multiplier": self.noise_multiplier, "delta": self.delta}

    def args(self) -> tuple[str, ...]:
        """The arguments a run gets (and its access proof signs): the same text on every side."""
        return (f"--dp-clip={self.clip!r}", f"--dp-noise={self.noise_multiplier!r}")

    @property
    def rho(self) -> float:
        """zCDP loss of one run's release."""
        return 1.0 / (2.0 * self.noise_multiplier**2)

    def epsilon(self, releases: int = 1) -> float:
        """(epsilon, ``delta``)-DP after ``releases`` runs over the same data (zCDP composition)."""
        rho = releases * self.rho
        return rho + 2.0 * math.sqrt(rho * math.log(1.0 / self.delta))

    def spent(self) -> dict[str, float]:
        """What one run spends, as the node records it beside the run."""
        return {**self.record(), "rho": self.rho, "epsilon": self.epsilon()}
