"""An in-process node for the trigger tests: the real stream service and LMDB stores, the real
executor with the warm python runtime, and the real API app. No peer is involved, so no process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import nacl.signing
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.executor import Executor
from agents.runtime.python import PythonRuntime
from node.api.app import build_app
from node.config import load_config
from node.metrics import Metrics
from node.streams.service import StreamService
from node.streams.store import StreamStore
from node.triggers.service import TriggerService
from node.triggers.store import TriggerStore
from storage.blockstore import BlockStore
from storage.peerid import peer_id_for


class Network:
    peer_id = "12D3KooWRequesterRequesterRequesterRequester"

    async def peers(self) -> list[str]:
        return []


@pytest.fixture(scope="session")
def warm_python() -> Iterator[PythonRuntime]:
    runtime = PythonRuntime(warm=True)
    yield runtime
    runtime.close()


@pytest.fixture
async def node(tmp_path: Path, warm_python: PythonRuntime) -> AsyncIterator[Any]:
    metrics = Metrics()
    store = BlockStore(tmp_path / "blocks")
    streams = StreamService(StreamStore(tmp_path / "streams"), cast(Any, Network()), metrics)
    (tmp_path / "work").mkdir()
    executor = Executor(store, {"python": warm_python}, nacl.signing.SigningKey(b"n" * 32), tmp_path / "work")  # type: ignore[dict-item]
    triggers = TriggerService(TriggerStore(tmp_path / "triggers"), streams, store, executor, metrics, 2)
    await triggers.start()
    own = peer_id_for(bytes(executor.signing_key.verify_key))
    yield SimpleNamespace(config=load_config(), metrics=metrics, streams=streams, store=store, triggers=triggers,
                          version="test", executor=executor, network=None, identity=SimpleNamespace(peer_id=own),
                          peers=SimpleNamespace(region_of=lambda peer: None))  # fmt: skip
    await triggers.stop()
    triggers.store.close()
    streams.store.close()
    store.close()


@pytest.fixture
async def client(node: Any) -> AsyncIterator[TestClient[Any, Any]]:
    test_client: TestClient[Any, Any] = TestClient(TestServer(build_app(cast(Any, node)), host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()
