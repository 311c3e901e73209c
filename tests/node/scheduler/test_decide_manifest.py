"""The requester reads an agent's manifest for every job it places: when the bundle is here
whole (every job after an agent's first), the check and the read share one thread hop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agents.bundle import pack
from node.scheduler.decide import Decider
from node.scheduler.job import JobSpec
from storage.blockstore import BlockStore
from tests.support import REPO_ROOT


def test_the_manifest_of_a_bundle_held_here_costs_one_thread_hop(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    fetched: list[object] = []

    async def fetch(root: object) -> None:
        fetched.append(root)

    exchange: Any = SimpleNamespace(store=store, fetch=fetch, bandwidth=lambda peer: None)
    network: Any = SimpleNamespace(ping=None)
    decider = Decider(network, exchange, SimpleNamespace(), lambda: None)  # type: ignore[arg-type]
    hops: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await to_thread(fn, *args, **kwargs)

    try:
        bundle = pack(REPO_ROOT / "examples" / "wasm-wordcount", store)
        asyncio.to_thread = counted  # type: ignore[assignment]
        try:
            manifest = asyncio.run(decider.manifest(JobSpec(bundle.agent_id, {})))
        finally:
            asyncio.to_thread = to_thread
        assert manifest == bundle.manifest and fetched == []
        assert len(hops) == 1, hops
    finally:
        store.close()
