"""Helpers and constants shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent / "vectors"
REPO_ROOT = Path(__file__).parent.parent


def load_json(relative: str) -> object:
    return json.loads((VECTORS / relative).read_text())


def seeded_bytes(seed: str, size: int) -> bytes:
    """The deterministic content of tests/vectors/unixfs: sha256(seed:j) digests end to end."""
    out = bytearray()
    j = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{j}".encode()).digest()
        j += 1
    return bytes(out[:size])


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


CliRunner = Callable[..., CliResult]


def run_cli(
    cwd: Path,
    data_dir: Path,
    *args: str | os.PathLike[str],
    data_dir_override: Path | None = None,
    timeout: float = 120,
) -> CliResult:
    env = dict(os.environ, MYCEL_DATA_DIR=str(data_dir_override or data_dir))
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def announcement_payload(peer_id: str, **changes: Any) -> dict[str, Any]:
    """A well-formed node announcement payload (sign it with node.announce.sign)."""
    base: dict[str, Any] = {
        "peer": peer_id,
        "addrs": ["/ip4/127.0.0.1/tcp/1"],
        "region": "eu",
        "runtimes": ["wasm"],
        "capacity": {"cpu_cores": 2},
        "load": {"running_jobs": 0},
        "price": 0,
        "api": "v1",
        "seq": 1,
        "time": 0,
    }
    base.update(changes)
    return base


def gossip_peer(identity: Any) -> Any:
    """A libp2p peer on the announcement topic whose own validator lets anything out,
    so tests can publish forged or malformed announcements and see the nodes refuse them."""
    from node import announce
    from node.p2p.network import P2PNetwork

    network = P2PNetwork(identity, ["/ip4/127.0.0.1/tcp/0"])

    async def ignore(origin: str, data: bytes) -> None:
        return None

    network.subscribe(announce.TOPIC, lambda origin, data: True, ignore)
    return network


@contextmanager
def thread_hops() -> Iterator[list[str]]:
    """Record the name of every function handed to ``asyncio.to_thread`` while inside: the
    tests that count an operation's thread hops (each a visible cost per job) read this list."""
    hops: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await to_thread(fn, *args, **kwargs)

    asyncio.to_thread = counted  # type: ignore[assignment]
    try:
        yield hops
    finally:
        asyncio.to_thread = to_thread
