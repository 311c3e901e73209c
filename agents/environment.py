"""The agent environment a node offers: the python interpreter and its packages, the wasm runtime.

A python agent runs on the node's own interpreter (``python -I``: no user site, no
PYTHONPATH), so what it can import is exactly the distributions installed for that
interpreter; this lists them. The hash covers the whole description, so two nodes with
the same hash offer the same environment, and a node announces the hash (small) while
``GET /v1/env`` serves the list (large).

Reading the distributions' metadata touches the disk: call :func:`agent_environment` off the
event loop; it is computed once per process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from agents.requirements import normalize, unmet


@dataclass(frozen=True)
class AgentEnvironment:
    python: str  # e.g. cpython-3.12.3, as receipts name the runtime
    packages: dict[str, str]  # normalized distribution name -> version
    wasm: str  # e.g. wasmtime-50.0.0 (WASI preview 1)
    hash: str  # sha256 hex of the canonical description

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "python": {"interpreter": self.python, "packages": self.packages},
            "wasm": {"runtime": self.wasm, "wasi": "preview1"},
        }

    def unmet(self, requires: tuple[str, ...]) -> list[str]:
        """The requirements this environment does not meet (empty: it meets them all)."""
        return unmet(requires, self.packages)


def _packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if isinstance(name, str) and name:
            found.setdefault(normalize(name), dist.version)  # first on sys.path wins, as for import
    return dict(sorted(found.items()))


def describe(python: str, packages: dict[str, str], wasm: str) -> AgentEnvironment:
    canonical = json.dumps({"python": python, "packages": packages, "wasm": wasm}, sort_keys=True)
    return AgentEnvironment(python, packages, wasm, hashlib.sha256(canonical.encode()).hexdigest())


@functools.cache
def agent_environment() -> AgentEnvironment:
    """This node's agent environment (disk reads: not on the event loop)."""
    wasm = f"wasmtime-{metadata.version('wasmtime')}"
    return describe(f"cpython-{platform.python_version()}", _packages(), wasm)
