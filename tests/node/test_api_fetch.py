"""A GET of content the node does not hold makes it fetch from peers: only for the token's bearer,
bounded in concurrency and bytes, one fetch per root however many clients ask.

Two in-process nodes over real libp2p on 127.0.0.1 (the fetch is what matters), the fetching
node's API served in-process; what was fetched is read from the exchange's byte counters and
the block store itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock

import nacl.signing
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from node.api.app import build_app
from node.api.errors import ApiError
from node.api.guards import check_remote_fetch
from node.config import load_config
from node.exchange import BlockExchange, FetchStats
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from node.privacy.registry import PrivacyRegistry
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.files import add_path
from tests.support import seeded_bytes

TOKEN = {"Authorization": "Bearer s3cret"}


class Peer:
    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp = tmp / f"{name}-src"
        self.store = BlockStore(tmp / name, map_size=64 << 20)
        self.network = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
        self.metrics = Metrics()
        self.exchange = BlockExchange(self.store, self.network, self.metrics)

    def add(self, name: str, data: bytes) -> CID:
        """A file, stored and pinned."""
        return self.add_tree(name, {"": data})

    def add_tree(self, name: str, files: dict[str, bytes]) -> CID:
        """A directory of ``files`` (relative path -> bytes; "" for a lone file), stored and pinned."""
        for relative, data in files.items():
            target = self.tmp / name / relative if relative else self.tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return add_path(self.store, self.tmp / name).cid


Api = Callable[..., Any]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Peer, Peer, Api]]:
    """(holder, fetcher, api): ``await api(**config)`` serves the fetcher's API with those settings."""
    holder, fetcher = Peer(tmp_path, "holder"), Peer(tmp_path, "fetcher")
    for peer in (holder, fetcher):
        await peer.network.start()
    await fetcher.network.connect((await holder.network.addrs())[0])
    clients: list[TestClient[Any, Any]] = []

    async def api(**settings: Any) -> TestClient[Any, Any]:
        service = SimpleNamespace(
            config=load_config(overrides={f"api.{key}": value for key, value in settings.items()}),
            metrics=fetcher.metrics,
            store=fetcher.store,
            privacy=PrivacyRegistry(tmp_path / f"privacy-{len(clients)}"),
            exchange=fetcher.exchange,
            provide=lambda root: None,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(build_app(cast(Any, service)), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield holder, fetcher, api
    for client in clients:
        await client.close()
    for peer in (holder, fetcher):
        await peer.network.stop()
        peer.exchange.close()
        peer.store.close()


def nothing_fetched(holder: Peer, fetcher: Peer) -> bool:
    return (
        fetcher.store.stats().blocks == 0
        and fetcher.metrics.value("bytes_in_total") == 0
        and holder.metrics.value("blocks_served_total") == 0
    )


async def test_an_anonymous_get_fetches_nothing_when_a_token_is_set(pair: tuple[Peer, Peer, Api]) -> None:
    holder, fetcher, api = pair
    content = seeded_bytes("remote", 700_000)
    root = holder.add("f", content)
    client = await api(token="s3cret", public_reads=["health", "blobs"])  # even with blobs public
    refused = await client.get(f"/v1/blobs/{root}")
    body = await refused.json()
    assert refused.status == 401 and body["error"] == "unauthorized"
    assert "fetching it from peers needs the token" in body["detail"] and "Authorization: Bearer" in body["detail"]
    assert (await client.head(f"/v1/blobs/{root}")).status == 401
    assert nothing_fetched(holder, fetcher)

    fetched = await client.get(f"/v1/blobs/{root}", headers=TOKEN)
    assert fetched.status == 200 and await fetched.read() == content
    assert fetcher.metrics.value("bytes_in_total") >= len(content)
    local = await client.get(f"/v1/blobs/{root}")  # now held, and blobs are public here: no token needed
    assert local.status == 200 and await local.read() == content


async def test_without_public_blobs_even_local_content_needs_the_token(pair: tuple[Peer, Peer, Api]) -> None:
    holder, fetcher, api = pair
    root = holder.add("g", b"private")
    client = await api(token="s3cret")  # the default public_reads
    refused = await client.get(f"/v1/blobs/{root}")
    detail = (await refused.json())["detail"]
    assert refused.status == 401 and "api.public_reads" in detail
    assert nothing_fetched(holder, fetcher)
    assert (await client.get(f"/v1/blobs/{root}/providers")).status == 401  # it would query the network


async def test_a_node_without_a_token_fetches_for_loopback_clients_only(pair: tuple[Peer, Peer, Api]) -> None:
    holder, _, api = pair
    root = holder.add("h", b"hello")
    client = await api()
    response = await client.get(f"/v1/blobs/{root}")
    assert response.status == 200 and await response.read() == b"hello"

    def from_address(address: str) -> web.Request:
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda name, default=None: (
            (address, 5555) if name == "peername" else default
        )
        return make_mocked_request("GET", f"/v1/blobs/{root}", app=client.app, transport=transport)

    check_remote_fetch(from_address("127.0.0.1"))
    check_remote_fetch(from_address("::1"))
    with pytest.raises(ApiError) as refused:
        check_remote_fetch(from_address("10.1.2.3"))
    assert refused.value.status == 403 and "loopback" in refused.value.detail


async def test_one_request_fetches_at_most_max_fetch_bytes(pair: tuple[Peer, Peer, Api]) -> None:
    holder, fetcher, api = pair
    root = holder.add("big", seeded_bytes("big", 3 << 20))
    client = await api(token="s3cret", max_fetch_bytes=300_000)
    response = await client.get(f"/v1/blobs/{root}", headers=TOKEN)
    body = await response.json()
    assert response.status == 403 and body["error"] == "fetch_too_large" and "api.max_fetch_bytes" in body["detail"]
    assert 0 < fetcher.store.stats().bytes <= 300_000  # counted on bytes received, stopped before the limit
    assert not fetcher.store.has(root) or fetcher.store.missing_blocks(root)


async def test_concurrent_gets_of_one_directory_share_one_fetch(pair: tuple[Peer, Peer, Api]) -> None:
    holder, fetcher, api = pair
    files = {f"d/{i}.bin": seeded_bytes(f"dir-{i}", 300_000) for i in range(4)}
    root = holder.add_tree("tree", files)
    blocks = len(list(holder.store.walk(root)))
    client = await api(token="s3cret")

    async def get() -> tuple[int, bytes]:
        response = await client.get(f"/v1/blobs/{root}", headers=TOKEN)
        return response.status, await response.read()

    results = await asyncio.gather(*(get() for _ in range(12)))
    assert {status for status, _ in results} == {200} and len({body for _, body in results}) == 1
    assert holder.metrics.value("blocks_served_total") == blocks  # each block crossed the network once
    assert fetcher.store.stats().blocks == blocks


async def test_remote_fetches_are_bounded_per_node(
    pair: tuple[Peer, Peer, Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    holder, fetcher, api = pair
    roots = [holder.add(f"r{i}", f"file {i}".encode()) for i in range(12)]
    real = fetcher.exchange.fetch
    gate = asyncio.Event()
    running: list[CID] = []
    peak = 0

    async def gated(root: CID, providers: Any = None, *, max_bytes: int | None = None) -> FetchStats:
        nonlocal peak
        running.append(root)
        peak = max(peak, len(running))
        try:
            await gate.wait()
            return await real(root, providers, max_bytes=max_bytes)
        finally:
            running.remove(root)

    monkeypatch.setattr(fetcher.exchange, "fetch", gated)
    client = await api(token="s3cret", max_remote_fetches=2)  # 2 running, 8 more waiting, the rest refused

    async def get(root: CID) -> int:
        response = await client.get(f"/v1/blobs/{root}", headers=TOKEN)
        await response.read()
        return response.status

    tasks = [asyncio.ensure_future(get(root)) for root in roots]
    done: set[asyncio.Future[int]] = set()
    while len(done) < 2:  # the two past the queue answer at once
        finished, _ = await asyncio.wait(set(tasks) - done, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert finished, "no request was refused"
        done |= finished
    assert [task.result() for task in done] == [503, 503] and len(running) == 2
    gate.set()
    statuses = await asyncio.gather(*tasks)
    assert sorted(statuses) == [200] * 10 + [503] * 2 and peak == 2
