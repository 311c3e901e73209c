"""The trustless gateway against DAGs Kubo made (tests/vectors/gateway: the CAR fixtures of the
IPFS gateway conformance suite), with that suite's expectations for pathing, dag-scope,
entity-bytes, dups and identity CIDs. Expected blocks are found by reading the fixture's blocks
directly (a HAMT entry by scanning link names), never through the code under test.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.config import load_config
from node.metrics import Metrics
from storage import dagpb
from storage.blockstore import BlockStore
from storage.car import import_car, read_car
from storage.cid import CID
from storage.dag import links_of
from storage.unixfs.hamt import murmur3_x64_64

FIXTURES = Path(__file__).resolve().parents[1] / "vectors" / "gateway"
Client = TestClient[Any, Any]


class Fixture:
    def __init__(self, name: str) -> None:
        roots, sections = read_car(open(FIXTURES / f"{name}.car", "rb"))  # noqa: SIM115  (read whole now)
        self.blocks = dict(sections)
        self.root = roots[0]

    def at(self, *names: str) -> CID:
        cid = self.root
        for name in names:
            cid = next(link.hash for link in dagpb.decode(self.blocks[cid]).links if link.name == name)
        return cid

    def descendants(self, cid: CID) -> list[CID]:
        out: list[CID] = []
        stack = list(reversed(links_of(cid, self.blocks[cid])))
        while stack:
            child = stack.pop()
            out.append(child)
            stack.extend(reversed(links_of(child, self.blocks[child])))
        return out

    def shards(self, cid: CID) -> list[CID]:
        """Every sub-shard of a HAMT, DFS."""
        out: list[CID] = []
        for link in dagpb.decode(self.blocks[cid]).links:
            if len(link.name or "") == 2:
                out += [link.hash, *self.shards(link.hash)]
        return out

    def hamt_entry(self, name: str) -> tuple[list[CID], CID]:
        """(the sub-shards down to ``name``, its CID), by scanning every shard's link names."""

        def search(cid: CID, trail: list[CID]) -> tuple[list[CID], CID] | None:
            for link in dagpb.decode(self.blocks[cid]).links:
                label = link.name or ""
                if len(label) == 2:
                    found = search(link.hash, [*trail, link.hash])
                    if found:
                        return found
                elif label[2:] == name:
                    return trail, link.hash
            return None

        result = search(self.root, [])
        assert result is not None
        return result


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    store = BlockStore(tmp_path / "blocks", map_size=64 << 20)
    for car in sorted(FIXTURES.glob("*.car")):
        with open(car, "rb") as stream:
            import_car(store, stream, pin_roots=False)
    service = SimpleNamespace(config=load_config(overrides={"api.token": "t", "api.public_reads": ["gateway"]}),
                              metrics=Metrics(), store=store, provide=lambda root: None)  # fmt: skip  # no fetching
    opened: Client = TestClient(TestServer(build_app(cast(Any, service)), host="127.0.0.1"))
    await opened.start_server()
    yield opened
    await opened.close()
    store.close()


async def blocks(client: Client, url: str, accept: str | None = None) -> list[CID]:
    """The CAR's blocks, asked both by ?format=car and by Accept, which must agree."""
    answers = []
    for how in ("format", "accept"):
        if how == "format":
            response = await client.get(url + ("&" if "?" in url else "?") + "format=car")
        else:
            response = await client.get(url, headers={"Accept": accept or "application/vnd.ipld.car"})
        assert response.status == 200, await response.text()
        assert response.headers["Accept-Ranges"] == "none" and response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Disposition"].startswith('attachment; filename="')
        _, sections = read_car(io.BytesIO(await response.read()))
        answers.append([cid for cid, _ in sections])
    assert answers[0] == answers[1] or accept is not None
    return answers[1]


def test_the_hamt_hash_places_every_kubo_entry_in_its_bucket() -> None:
    """Each entry link of Kubo's HAMT is named by the bucket of its name's hash at its depth."""
    hamt = Fixture("single-layer-hamt-with-multi-block-files")
    checked = 0
    for top in dagpb.decode(hamt.blocks[hamt.root]).links:
        for link in dagpb.decode(hamt.blocks[top.hash]).links if len(top.name or "") == 2 else []:
            label = link.name or ""
            if len(label) == 2:
                continue  # a deeper shard
            digest = murmur3_x64_64(label[2:].encode())
            assert (f"{digest[0]:02X}", f"{digest[1]:02X}") == (top.name, label[:2]), label
            checked += 1
    assert checked > 100


async def test_pathing_through_directories_a_hamt_and_dag_cbor(client: Client) -> None:
    two = Fixture("subdir-with-two-single-block-files")
    assert await blocks(client, f"/ipfs/{two.root}/subdir/ascii.txt") == [
        two.root, two.at("subdir"), two.at("subdir", "ascii.txt")]  # fmt: skip
    hamt = Fixture("single-layer-hamt-with-multi-block-files")
    trail, entry = hamt.hamt_entry("685.txt")
    assert await blocks(client, f"/ipfs/{hamt.root}/685.txt") == [hamt.root, *trail, entry, *hamt.descendants(entry)]
    cbor = Fixture("dir-with-dag-cbor-with-links")
    document = cbor.at("document")
    single = next(c for c in cbor.blocks if str(c) == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
    assert await blocks(client, f"/ipfs/{document}/files/single") == [document, single]
    missing = await client.get(f"/ipfs/{two.root}/subdir/i-do-not-exist?format=car")
    assert missing.status == 404


async def test_dag_scope_block_and_entity(client: Client) -> None:
    two = Fixture("subdir-with-two-single-block-files")
    assert await blocks(client, f"/ipfs/{two.root}/subdir?dag-scope=block") == [two.root, two.at("subdir")]
    hamt = Fixture("single-layer-hamt-with-multi-block-files")
    trail, entry = hamt.hamt_entry("1.txt")
    assert await blocks(client, f"/ipfs/{hamt.root}/1.txt?dag-scope=block") == [hamt.root, *trail, entry]
    assert await blocks(client, f"/ipfs/{hamt.root}?dag-scope=entity") == [hamt.root, *hamt.shards(hamt.root)]
    assert await blocks(client, f"/ipfs/{hamt.root}?dag-scope=entity&entity-bytes=0:*") == [
        hamt.root, *hamt.shards(hamt.root)]  # fmt: skip
    mixed = Fixture("subdir-with-mixed-block-files")
    multi = mixed.at("subdir", "multiblock.txt")
    assert await blocks(client, f"/ipfs/{mixed.root}/subdir/multiblock.txt?dag-scope=entity") == [
        mixed.root, mixed.at("subdir"), multi, *mixed.descendants(multi)]  # fmt: skip
    cbor = Fixture("dir-with-dag-cbor-with-links")
    assert await blocks(client, f"/ipfs/{cbor.root}/document?dag-scope=entity") == [cbor.root, cbor.at("document")]


async def test_entity_bytes_on_kubo_files(client: Client) -> None:
    mixed = Fixture("subdir-with-mixed-block-files")
    multi = mixed.at("subdir", "multiblock.txt")
    leaves = mixed.descendants(multi)
    for spec, expected in [("512:1023", leaves[2:4]), ("512:-256", leaves[2:4]), ("-5:*", leaves[3:]),
                           ("0:0", leaves[:1]), ("-9999:-3", leaves[:4])]:  # fmt: skip
        assert await blocks(client, f"/ipfs/{multi}?dag-scope=entity&entity-bytes={spec}") == [multi, *expected]
    gap = Fixture("file-3k-and-3-blocks-missing-block")  # its middle block is not in the CAR
    first, _, third = (link.hash for link in dagpb.decode(gap.blocks[gap.root]).links)
    assert await blocks(client, f"/ipfs/{gap.root}?dag-scope=entity&entity-bytes=0:1000") == [gap.root, first]
    assert await blocks(client, f"/ipfs/{gap.root}?dag-scope=entity&entity-bytes=2200:*") == [gap.root, third]


async def test_order_dups_and_identity(client: Client) -> None:
    dups = Fixture("dir-with-duplicate-files")
    names = [link.name for link in dagpb.decode(dups.blocks[dups.root]).links]
    assert names == ["ascii-copy.txt", "ascii.txt", "hello.txt", "multiblock.txt"]
    multi = dups.at("multiblock.txt")
    every = [dups.root, dups.at("ascii-copy.txt"), dups.at("ascii.txt"), dups.at("hello.txt"), multi,
             *dups.descendants(multi)]  # fmt: skip
    with_dups = "application/vnd.ipld.car; version=1; order=dfs; dups=y"
    assert await blocks(client, f"/ipfs/{dups.root}", with_dups) == every
    once = await blocks(client, f"/ipfs/{dups.root}", "application/vnd.ipld.car; version=1; order=dfs; dups=n")
    assert once == [every[0], *every[2:]]  # ascii.txt is ascii-copy.txt
    unknown = await client.get(f"/ipfs/{dups.root}", headers={"Accept": "application/vnd.ipld.car; order=unk"})
    assert "order=" in unknown.headers["Content-Type"]
    identity = "bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa"
    assert await blocks(client, f"/ipfs/{identity}", "application/vnd.ipld.car; dups=y") == []
