"""GET /v1/blobs/{cid} never sends a wrong body that looks right (in-process API, real LMDB store).

A block is corrupted in the store's data file directly; small content must answer 502 before any
body, a large stream must not complete, and intact content is never reported corrupt.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.api.content import VERIFIED_BEFORE_HEADERS
from node.config import load_config
from node.metrics import Metrics
from node.privacy.registry import PrivacyRegistry
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.files import add_path
from tests.support import seeded_bytes

MiB = 1 << 20


class Node:
    """A store and the API over it; ``corrupt`` flips a byte of stored content on disk."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.path = tmp / "blocks"
        self.scratch = tmp / "scratch"
        self.scratch.mkdir()
        self.store = self._open()

    def _open(self) -> BlockStore:
        return BlockStore(self.path, map_size=64 << 20, verify_on_get=False)  # the API re-hashes anyway

    def add(self, relative: str, content: bytes | None = None, tree: dict[str, bytes] | None = None) -> CID:
        target = self.tmp / "src" / relative
        if tree is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content or b"")
        else:
            for name, data in tree.items():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                (target / name).write_bytes(data)
        return add_path(self.store, target).cid

    def corrupt(self, needle: bytes) -> None:
        self.store.close()
        raw = bytearray((self.path / "data.mdb").read_bytes())
        offset = raw.find(needle)
        assert offset > 0 and raw.find(needle, offset + 1) < 0
        raw[offset + len(needle) // 2] ^= 0x01
        (self.path / "data.mdb").write_bytes(bytes(raw))
        self.store = self._open()


Start = Callable[[], Any]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[Node, Start]]:
    node = Node(tmp_path)
    clients: list[TestClient[Any, Any]] = []

    async def start() -> TestClient[Any, Any]:
        service = SimpleNamespace(
            config=load_config(),
            metrics=Metrics(),
            store=node.store,
            privacy=PrivacyRegistry(tmp_path / f"privacy-{len(clients)}"),
            scratch_dir=node.scratch,
            provide=lambda root: None,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(build_app(cast(Any, service)), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield node, start
    for client in clients:
        await client.close()
    node.store.close()


async def test_a_small_file_with_a_corrupt_block_is_502_before_any_body(node: tuple[Node, Start]) -> None:
    store, start = node
    content = seeded_bytes("small", 600_000)  # three blocks, under the verified-before-headers bound
    cid = store.add("small.bin", content)
    store.corrupt(content[300_000:300_100])  # inside the second block
    client = await start()
    response = await client.get(f"/v1/blobs/{cid}")
    body = await response.json()
    assert response.status == 502 and body["error"] == "corrupt_block"
    assert "corrupt" in body["detail"] and "mycel store verify" in body["detail"]
    bad = [c for c, _ in store.store.verify_all()]  # verify_all hashes whatever verify_on_get says
    assert len(bad) == 1 and str(bad[0]) in body["detail"]  # the CID of the bad block is named


async def test_a_small_directory_with_a_corrupt_block_is_502(node: tuple[Node, Start]) -> None:
    store, start = node
    inner = seeded_bytes("inner", 5000)
    cid = store.add("dir", tree={"a.txt": b"alpha", "sub/b.bin": inner})
    store.corrupt(inner[1000:1100])
    client = await start()
    response = await client.get(f"/v1/blobs/{cid}")
    assert response.status == 502 and (await response.json())["error"] == "corrupt_block"


async def test_a_big_file_with_a_corrupt_block_never_completes(node: tuple[Node, Start]) -> None:
    store, start = node
    content = seeded_bytes("big", 3 * MiB)
    cid = store.add("big.bin", content)
    store.corrupt(content[2 * MiB + 1000 : 2 * MiB + 1100])  # past the verified-before-headers bound
    client = await start()
    response = await client.get(f"/v1/blobs/{cid}")
    assert response.status == 200  # the status line went before the bad block was reached
    received = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in response.content.iter_any():
            received += chunk
    assert len(received) < 2 * MiB + 1000 and content.startswith(bytes(received))  # a prefix, never wrong bytes


async def test_a_big_directory_with_a_corrupt_block_never_completes(node: tuple[Node, Start]) -> None:
    store, start = node
    late = seeded_bytes("late", 2 * MiB)
    cid = store.add("dir", tree={"a.bin": seeded_bytes("early", 2 * MiB), "z.bin": late})
    store.corrupt(late[MiB : MiB + 100])
    client = await start()
    response = await client.get(f"/v1/blobs/{cid}")
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()


@pytest.mark.parametrize("size", [0, 1, 256 * 1024, VERIFIED_BEFORE_HEADERS, VERIFIED_BEFORE_HEADERS + 1, 3 * MiB + 17])
async def test_an_intact_file_is_never_reported_corrupt(node: tuple[Node, Start], size: int) -> None:
    store, start = node
    content = seeded_bytes(f"intact-{size}", size)
    cid = store.add("f.bin", content)
    client = await start()
    response = await client.get(f"/v1/blobs/{cid}")
    assert response.status == 200 and response.headers["X-Content-CID"] == str(cid)
    assert await response.read() == content


@pytest.mark.parametrize("big", [False, True])
async def test_a_directory_streams_as_tar_without_scratch_space(node: tuple[Node, Start], big: bool) -> None:
    store, start = node
    files = {
        "a.txt": b"alpha",
        "empty": b"",
        "sub/b.bin": seeded_bytes("b", 300_000),
        "sub/deeper/c.bin": seeded_bytes("c", 3 * MiB if big else 700),
    }
    cid = store.add("dir", tree=files)
    os.symlink("a.txt", store.tmp / "src" / "dir" / "link")
    linked = add_path(store.store, store.tmp / "src" / "dir").cid
    client = await start()
    response = await client.get(f"/v1/blobs/{linked}")
    assert response.status == 200 and response.content_type == "application/x-tar"
    first = await response.content.readexactly(512)
    assert os.listdir(store.scratch) == []  # mid-download: nothing staged on disk
    archive = first + await response.read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = sorted(tar.getnames())
        assert names == ["a.txt", "empty", "link", "sub", "sub/b.bin", "sub/deeper", "sub/deeper/c.bin"]
        for name, data in files.items():
            member = tar.extractfile(name)
            assert member is not None and member.read() == data, name
        assert tar.getmember("link").issym() and tar.getmember("link").linkname == "a.txt"
        assert tar.getmember("sub").isdir()
    assert cid != linked
