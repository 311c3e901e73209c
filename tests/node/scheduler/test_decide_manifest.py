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
from tests.support import REPO_ROOT, thread_hops


def test_the_manifest_of_a_bundle_held_here_costs_one_thread_hop(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "blocks")
    fetched: list[object] = []

    async def fetch(root: object) -> None:
        fetched.append(root)

    exchange: Any = SimpleNamespace(store=store, fetch=fetch, bandwidth=lambda peer: None)
    network: Any = SimpleNamespace(ping=None)
    decider = Decider(network, exchange, SimpleNamespace(), lambda: None)  # type: ignore[arg-type]
    try:
        bundle = pack(REPO_ROOT / "examples" / "wasm-wordcount", store)
        with thread_hops() as hops:
            manifest = asyncio.run(decider.manifest(JobSpec(bundle.agent_id, {})))
        assert manifest == bundle.manifest and fetched == []
        assert len(hops) == 1, hops
    finally:
        store.close()
