"""A job's effective limits, computed in one place for every side that needs them.

The manifest declares limits; the job may override them (each override checked by the
same code that checks a manifest: known names, integers within the hard caps); the
executing node then caps the result at its operator's ceilings (``[capacity] max_*``).
The requester computes the same thing without ceilings (it cannot know the executor's),
which is an upper bound of what will run, so its run timeout is never shorter than the
agent's wall-clock limit there. A ceiling caps, it does not refuse: the job still runs,
only with less room, and the receipt's usage says what it used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from agents.manifest import Limits


@dataclass(frozen=True)
class Ceilings:
    """The most any job may use on this node, whatever its manifest or overrides ask."""

    cpu_seconds: int = 3600
    memory_mib: int = 4096
    wall_seconds: int = 3600
    max_output_mib: int = 1024
    processes: int = 16
    max_output_files: int = 100_000

    @classmethod
    def from_capacity(cls, capacity: Mapping[str, Any]) -> Ceilings:
        """Read ``max_<limit>`` from the config's ``[capacity]`` section (validated by node.config)."""
        values = {f.name: int(capacity[f"max_{f.name.removeprefix('max_')}"]) for f in fields(cls)}
        return cls(**values)


CEILING_KEYS = tuple(f"max_{f.name.removeprefix('max_')}" for f in fields(Ceilings))


def effective_limits(manifest: Limits, overrides: Mapping[str, int], ceilings: Ceilings | None = None) -> Limits:
    """Manifest limits, then the job's (already validated) overrides, then the node's ceilings."""
    limits = replace(manifest, **{key: value for key, value in overrides.items() if hasattr(manifest, key)})
    if ceilings is None:
        return limits
    capped = {f.name: min(getattr(limits, f.name), getattr(ceilings, f.name)) for f in fields(Limits)}
    return replace(limits, **capped)
