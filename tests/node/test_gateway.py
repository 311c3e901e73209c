"""GET/HEAD /ipfs/{cid}[/path] against the trustless gateway spec (in-process API over a real LMDB
store: a node process adds nothing here; tests/node/test_gateway_helia.py has the real client).

Every CAR answer is parsed with storage/car.py, which re-hashes each block against its CID.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.app import build_app
from node.api.errors import ApiError
from node.api.gateway import MAX_STREAMS, STREAMS_KEY, _segments
from node.config import load_config
from node.exchange import NotFoundOnNetwork
from node.metrics import Metrics
from storage import dagcbor
from storage.blockstore import BlockStore
from storage.car import read_car
from storage.cid import CID
from storage.files import add_path
from storage.unixfs.importer import ImportOptions
from tests.support import seeded_bytes

MiB = 1 << 20
RAW = {"Accept": "application/vnd.ipld.raw"}
CAR = {"Accept": "application/vnd.ipld.car"}
PROBE = "bafkqaaa"  # the identity CID of no bytes


class Exchange:
    """Peers that hold nothing: a fetch the gateway is allowed to start finds no provider."""

    def __init__(self) -> None:
        self.fetched: list[CID] = []

    async def fetch(self, root: CID, max_bytes: int | None = None) -> None:
        self.fetched.append(root)
        raise NotFoundOnNetwork(f"no connected peer holds {root}")


class Privacy:
    def __init__(self, private: set[CID]) -> None:
        self.private = private

    def is_private(self, cid: CID) -> bool:
        return cid in self.private


class Node:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.path = tmp / "blocks"
        self.store = BlockStore(self.path, map_size=64 << 20, verify_on_get=False)
        self.exchange = Exchange()

    def add(self, name: str, tree: dict[str, bytes] | bytes, chunk: int = 256 * 1024, version: int = 1) -> CID:
        target = self.tmp / "src" / name
        if isinstance(tree, bytes):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tree)
        else:
            for relative, data in tree.items():
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                (target / relative).write_bytes(data)
        options = ImportOptions(chunk_size=chunk, cid_version=version)
        return add_path(self.store, target, options=options).cid

    def child(self, root: CID, *names: str) -> CID:
        from storage.unixfs.exporter import list_directory

        cid = root
        for name in names:
            cid = dict(list_directory(self.store.get, cid))[name]
        return cid

    def dfs(self, root: CID) -> list[CID]:
        return [cid for cid, _ in self.store.walk(root)]

    def corrupt(self, needle: bytes) -> None:
        self.store.close()
        raw = bytearray((self.path / "data.mdb").read_bytes())
        offset = raw.find(needle)
        assert offset > 0
        raw[offset + len(needle) // 2] ^= 0x01
        (self.path / "data.mdb").write_bytes(bytes(raw))
        self.store = BlockStore(self.path, map_size=64 << 20, verify_on_get=False)


Start = Callable[..., Any]


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[tuple[Node, Start]]:
    node = Node(tmp_path)
    clients: list[TestClient[Any, Any]] = []

    async def start(privacy: Privacy | None = None, **settings: Any) -> TestClient[Any, Any]:
        service = SimpleNamespace(
            config=load_config(overrides={f"api.{key}": value for key, value in settings.items()}),
            metrics=Metrics(),
            store=node.store,
            exchange=node.exchange,
            provide=lambda root: None,
        )
        if privacy is not None:
            service.privacy = privacy
        client: TestClient[Any, Any] = TestClient(TestServer(build_app(cast(Any, service)), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield node, start
    for client in clients:
        await client.close()
    node.store.close()


async def car_of(response: aiohttp.ClientResponse) -> tuple[list[CID], list[CID]]:
    assert response.status == 200, await response.text()
    roots, sections = read_car(io.BytesIO(await response.read()))  # verifies every block
    return roots, [cid for cid, _ in sections]


def multiblock(node: Node) -> tuple[CID, list[CID], bytes]:
    """A 1026-byte CIDv1 file in 256-byte chunks: a dag-pb root over five raw leaves."""
    content = seeded_bytes("multiblock", 4 * 256 + 2)
    root = node.add("multiblock.txt", content, chunk=256)
    return root, node.dfs(root)[1:], content


# -- raw blocks -------------------------------------------------------------------------------


async def test_a_raw_block_by_format_or_accept_with_the_spec_headers(gw: tuple[Node, Start]) -> None:
    node, start = gw
    root = node.add("dir", {"ascii.txt": b"hello\n", "b.txt": b"bee"})
    leaf = node.child(root, "ascii.txt")
    client = await start()
    by_format = await client.get(f"/ipfs/{leaf}?format=raw")
    assert by_format.status == 200 and await by_format.read() == b"hello\n"
    assert "Content-Location" not in by_format.headers
    response = await client.get(f"/ipfs/{leaf}", headers=RAW)
    assert await response.read() == b"hello\n"
    headers = response.headers
    assert headers["Content-Type"] == "application/vnd.ipld.raw" and headers["Content-Length"] == "6"
    assert headers["Content-Disposition"] == f'attachment; filename="{leaf}.bin"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "public, max-age=29030400, immutable"
    assert headers["Etag"] == f'"{leaf}.raw"'
    assert headers["X-Ipfs-Path"] == f"/ipfs/{leaf}" and headers["X-Ipfs-Roots"] == str(leaf)
    assert headers["Content-Location"] == f"/ipfs/{leaf}?format=raw"  # negotiated by Accept
    directory = await client.get(f"/ipfs/{root}?format=raw")
    assert await directory.read() == node.store.get(root)  # the dag-pb block itself, not a listing


async def test_raw_custom_filename_head_range_and_if_none_match(gw: tuple[Node, Start]) -> None:
    node, start = gw
    cid = node.add("one.bin", b"0123456789")
    client = await start()
    named = await client.get(f"/ipfs/{cid}?format=raw&filename=test\u0442\u0435\u0441\u0442.bin")
    assert named.headers["Content-Disposition"] == (
        "attachment; filename=\"test____.bin\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.bin"
    )
    head = await client.head(f"/ipfs/{cid}?format=raw")
    assert head.status == 200 and head.headers["Content-Length"] == "10" and await head.read() == b""
    ranged = await client.get(f"/ipfs/{cid}?format=raw", headers={"Range": "bytes=2-4"})
    assert ranged.status == 206 and await ranged.read() == b"234"
    assert ranged.headers["Content-Range"] == "bytes 2-4/10"
    suffix = await client.get(f"/ipfs/{cid}?format=raw", headers={"Range": "bytes=-3"})
    assert suffix.status == 206 and await suffix.read() == b"789"
    outside = await client.get(f"/ipfs/{cid}?format=raw", headers={"Range": "bytes=10-"})
    assert outside.status == 416 and outside.headers["Content-Range"] == "bytes */10"
    etag = named.headers["Etag"]
    cached = await client.get(f"/ipfs/{cid}?format=raw", headers={"If-None-Match": etag})
    assert cached.status == 304 and await cached.read() == b"" and cached.headers["Etag"] == etag


async def test_the_identity_probe_answers_raw_and_car(gw: tuple[Node, Start]) -> None:
    _, start = gw
    client = await start()
    raw = await client.get(f"/ipfs/{PROBE}", headers=RAW)
    assert raw.status == 200 and await raw.read() == b""
    roots, blocks = await car_of(await client.get(f"/ipfs/{PROBE}?format=car&car-dups=y"))
    assert roots == [CID.parse(PROBE)] and blocks == []  # identity blocks are never sent
    assert (await client.head(f"/ipfs/{PROBE}?format=car")).status == 200


# -- format negotiation and request errors ------------------------------------------------------


async def test_format_wins_over_accept_and_car_parameters_are_echoed(gw: tuple[Node, Start]) -> None:
    node, start = gw
    cid = node.add("f.txt", b"content")
    client = await start()
    car = await client.get(f"/ipfs/{cid}?format=car", headers=RAW)
    assert car.headers["Content-Type"] == "application/vnd.ipld.car; version=1; order=dfs; dups=n"
    assert car.headers["Accept-Ranges"] == "none" and car.headers["X-Content-Type-Options"] == "nosniff"
    assert car.headers["Content-Disposition"] == f'attachment; filename="{cid}.car"'
    raw = await client.get(f"/ipfs/{cid}?format=raw", headers=CAR)
    assert raw.headers["Content-Type"] == "application/vnd.ipld.raw"
    asked = {"Accept": "application/vnd.ipld.car; version=1; order=unk; dups=y"}
    echoed = await client.get(f"/ipfs/{cid}", headers=asked)
    assert echoed.headers["Content-Type"] == "application/vnd.ipld.car; version=1; order=dfs; dups=y"
    assert echoed.headers["Content-Location"] == f"/ipfs/{cid}?format=car"
    query_wins = await client.get(f"/ipfs/{cid}?format=car&car-dups=n&car-order=dfs", headers=asked)
    assert query_wins.headers["Content-Type"].endswith("order=dfs; dups=n")
    weighted = {"Accept": "application/vnd.ipld.car;q=0.5, application/vnd.ipld.raw"}
    assert (await client.get(f"/ipfs/{cid}", headers=weighted)).headers["Content-Type"] == "application/vnd.ipld.raw"
    v2_then_raw = {"Accept": "application/vnd.ipld.car;version=2, application/vnd.ipld.raw;q=0.1"}
    assert (await client.get(f"/ipfs/{cid}", headers=v2_then_raw)).headers["Content-Type"] == "application/vnd.ipld.raw"


@pytest.mark.parametrize(
    ("url", "headers", "status", "error"),
    [
        ("/ipfs/not-a-cid?format=raw", {}, 400, "invalid_cid"),
        ("/ipfs/{cid}", {}, 400, "format_required"),
        ("/ipfs/{cid}", {"Accept": "*/*"}, 400, "format_required"),
        ("/ipfs/{cid}", {"Accept": "text/html,application/xhtml+xml"}, 406, "not_acceptable"),
        ("/ipfs/{cid}", {"Accept": "application/vnd.ipld.car; version=2"}, 406, "not_acceptable"),
        ("/ipfs/{cid}", {"Accept": "application/vnd.ipld.car; dups=maybe"}, 406, "not_acceptable"),
        ("/ipfs/{cid}?format=tar", {}, 406, "not_acceptable"),
        ("/ipfs/{cid}?format=dag-json", {}, 406, "not_acceptable"),
        ("/ipfs/{cid}?format=zip", {}, 400, "bad_format"),
        ("/ipfs/{cid}?format=car&dag-scope=most", {}, 400, "bad_dag_scope"),
        ("/ipfs/{cid}?format=car&entity-bytes=a:b", {}, 400, "bad_entity_bytes"),
        ("/ipfs/{cid}?format=car&entity-bytes=10:5", {}, 400, "bad_entity_bytes"),
        ("/ipfs/{cid}?format=car&entity-bytes=12", {}, 400, "bad_entity_bytes"),
        ("/ipfs/{cid}?format=car&car-version=2", {}, 400, "bad_car_version"),
        ("/ipfs/{cid}?format=car&car-order=bfs", {}, 400, "bad_car_order"),
        ("/ipfs/{cid}?format=car&car-dups=1", {}, 400, "bad_car_dups"),
        ("/ipfs/{cid}/nope?format=car", {}, 404, "not_found"),
        ("/ipfs/{cid}/a.txt/deeper?format=car", {}, 404, "not_found"),
        ("/ipfs/{cid}/a.txt?format=raw&filename=", {}, 400, "bad_filename"),
    ],
)
async def test_bad_requests_are_clear_4xx(
    gw: tuple[Node, Start], url: str, headers: dict[str, str], status: int, error: str
) -> None:
    node, start = gw
    cid = node.add("dir", {"a.txt": b"alpha"})
    client = await start()
    response = await client.get(url.replace("{cid}", str(cid)), headers=headers)
    body = await response.json()
    assert (response.status, body["error"]) == (status, error), body
    assert body["detail"]


def test_dot_segments_are_refused() -> None:
    """Clients normalise them away, but a raw request line can still carry them."""
    for path in ("a/../b", "./a", "a/.."):
        with pytest.raises(ApiError) as refused:
            _segments(path)
        assert refused.value.status == 400 and refused.value.error == "bad_path"
    assert _segments("a//b/") == ("a", "b")
    with pytest.raises(ApiError, match="limited to 64 segments"):
        _segments("/".join(["d"] * 65))


async def test_missing_content_is_404_or_412_and_fetched_only_as_blobs_would(gw: tuple[Node, Start]) -> None:
    node, start = gw
    absent = CID.for_block(b"not here")
    client = await start()
    cached = await client.get(f"/ipfs/{absent}?format=raw", headers={"Cache-Control": "only-if-cached"})
    assert cached.status == 412 and node.exchange.fetched == []  # never fetches
    missing = await client.get(f"/ipfs/{absent}?format=car")
    assert missing.status == 404 and node.exchange.fetched == [absent]  # a loopback client may fetch
    assert (await client.head(f"/ipfs/{absent}?format=raw")).status == 404
    guarded = await start(token="s3cret", public_reads=["gateway"])
    anonymous = await guarded.get(f"/ipfs/{absent}?format=raw")
    assert anonymous.status == 404 and node.exchange.fetched == [absent]  # no token: no fetch, just 404
    held = node.add("h.txt", b"held")
    assert (await guarded.get(f"/ipfs/{held}?format=raw")).status == 200  # the class is public here
    closed = await start(token="s3cret")
    assert (await closed.get(f"/ipfs/{held}?format=raw")).status == 401  # not public by default
    ok = await closed.get(f"/ipfs/{held}?format=raw", headers={"Authorization": "Bearer s3cret"})
    assert ok.status == 200


# -- CAR streams ------------------------------------------------------------------------------


async def test_a_directory_car_is_every_block_in_dfs_order(gw: tuple[Node, Start]) -> None:
    node, start = gw
    big = seeded_bytes("big", 600_000)
    root = node.add("dir", {"a.txt": b"alpha", "sub/big.bin": big, "sub/z.txt": b"zed"})
    client = await start()
    response = await client.get(f"/ipfs/{root}?format=car")
    roots, blocks = await car_of(response)
    assert roots == [root] and blocks == node.dfs(root)
    assert response.headers["X-Ipfs-Roots"] == str(root) and response.headers["Etag"].startswith(f'"{root}.car.')
    by_accept = await client.get(f"/ipfs/{root}", headers=CAR)
    assert (await car_of(by_accept))[1] == blocks and by_accept.headers[
        "Content-Location"
    ] == f"/ipfs/{root}?format=car"
    head = await client.head(f"/ipfs/{root}?format=car")
    assert head.status == 200 and head.headers["Content-Type"].startswith("application/vnd.ipld.car")
    assert await head.read() == b""


async def test_pathing_and_dag_scopes(gw: tuple[Node, Start]) -> None:
    node, start = gw
    multi = seeded_bytes("multi", 1026)
    root = node.add("dir", {"subdir/ascii.txt": b"ascii", "subdir/multi.txt": multi, "top.txt": b"t"}, chunk=256)
    subdir = node.child(root, "subdir")
    ascii_txt, multi_txt = node.child(subdir, "ascii.txt"), node.child(subdir, "multi.txt")
    client = await start()

    async def blocks(query: str) -> list[CID]:
        return (await car_of(await client.get(f"/ipfs/{root}{query}")))[1]

    assert await blocks("/subdir/ascii.txt?format=car") == [root, subdir, ascii_txt]
    assert await blocks("/subdir?format=car&dag-scope=block") == [root, subdir]
    assert await blocks("/subdir/multi.txt?format=car&dag-scope=block") == [root, subdir, multi_txt]
    assert await blocks("?format=car&dag-scope=entity") == [root]  # a directory's entity: its listing
    assert await blocks("/subdir/multi.txt?format=car&dag-scope=entity") == [root, subdir, *node.dfs(multi_txt)]
    assert await blocks("/subdir?format=car&dag-scope=all") == [root, *node.dfs(subdir)]
    response = await client.get(f"/ipfs/{root}/subdir/multi.txt?format=car")
    assert response.headers["X-Ipfs-Path"] == f"/ipfs/{root}/subdir/multi.txt"
    assert response.headers["X-Ipfs-Roots"] == f"{root},{subdir},{multi_txt}"
    etags = {(await client.get(f"/ipfs/{root}?format=car&dag-scope={s}")).headers["Etag"] for s in ("block", "all")}
    assert len(etags) == 2  # the scope is part of the Etag
    raw = await client.get(f"/ipfs/{root}/subdir/ascii.txt?format=raw")
    assert await raw.read() == b"ascii"  # a raw leaf is the file's bytes


@pytest.mark.parametrize(
    ("entity_bytes", "leaves"),
    [("0:0", [0]), ("512:1023", [2, 3]), ("512:*", [2, 3, 4]), ("512:-256", [2, 3]), ("-5:*", [3, 4]),
     ("-9999:*", [0, 1, 2, 3, 4]), ("-9999:-3", [0, 1, 2, 3]), ("0:*", [0, 1, 2, 3, 4]), ("100:-1000", [])],
)  # fmt: skip
async def test_entity_bytes_sends_only_the_blocks_of_the_range(
    gw: tuple[Node, Start], entity_bytes: str, leaves: list[int]
) -> None:
    node, start = gw
    root, children, _ = multiblock(node)
    client = await start()
    response = await client.get(f"/ipfs/{root}?format=car&dag-scope=entity&entity-bytes={entity_bytes}")
    assert (await car_of(response))[1] == [root, *(children[i] for i in leaves)]


async def test_entity_bytes_ignores_blocks_it_does_not_need_and_refuses_a_range_past_the_end(
    gw: tuple[Node, Start],
) -> None:
    node, start = gw
    root, children, _ = multiblock(node)
    node.store.delete(children[4])  # the gateway is missing the last block
    client = await start()
    front = await client.get(f"/ipfs/{root}?format=car&entity-bytes=0:1000")  # implies dag-scope=entity
    assert (await car_of(front))[1] == [root, *children[:4]]
    past = await client.get(f"/ipfs/{root}?format=car&entity-bytes=2000:*")
    assert past.status == 400 and (await past.json())["error"] == "range_not_satisfiable"
    directory = node.add("d", {"x": b"x"})
    ignored = await client.get(f"/ipfs/{directory}?format=car&entity-bytes=0:10")
    assert (await car_of(ignored))[1] == [directory]  # not a file: equivalent to dag-scope=entity


async def test_dups_y_sends_every_occurrence_and_dups_n_each_block_once(gw: tuple[Node, Start]) -> None:
    node, start = gw
    root = node.add("dir", {"ascii-copy.txt": b"same", "ascii.txt": b"same", "hello.txt": b"hi"})
    same, hello = node.child(root, "ascii.txt"), node.child(root, "hello.txt")
    client = await start()
    with_dups = await client.get(f"/ipfs/{root}", headers={"Accept": "application/vnd.ipld.car; dups=y"})
    assert (await car_of(with_dups))[1] == [root, same, same, hello]
    assert with_dups.headers["Content-Type"].endswith("dups=y")
    without = await client.get(f"/ipfs/{root}?format=car&car-dups=n")
    assert (await car_of(without))[1] == [root, same, hello]
    assert with_dups.headers["Etag"] != without.headers["Etag"]


async def test_pathing_through_dag_cbor_to_unixfs(gw: tuple[Node, Start]) -> None:
    node, start = gw
    file = node.add("single", b"single file")
    inner = {"files": {"single": file, "n": 1}, "list": [file]}
    doc, data = dagcbor.encode_with_cid(inner)
    node.store.put(doc, data)
    client = await start()
    assert (await car_of(await client.get(f"/ipfs/{doc}/files/single?format=car")))[1] == [doc, file]
    assert (await car_of(await client.get(f"/ipfs/{doc}/list/0?format=car")))[1] == [doc, file]
    entity = await client.get(f"/ipfs/{doc}?format=car&dag-scope=entity")
    assert (await car_of(entity))[1] == [doc]  # non-UnixFS: the entity is the block
    assert (await car_of(await client.get(f"/ipfs/{doc}/files?format=car")))[1] == [doc, file]
    assert (await client.get(f"/ipfs/{doc}/files/none?format=car")).status == 404
    assert (await client.get(f"/ipfs/{doc}/list/7?format=car")).status == 404


# -- verification, bounds and the private-data gate -----------------------------------------


async def test_a_small_car_with_a_corrupt_block_is_502_and_a_big_one_aborts(gw: tuple[Node, Start]) -> None:
    node, start = gw
    small = seeded_bytes("small", 300_000)
    big = seeded_bytes("big", 3 * MiB)
    small_cid, big_cid = node.add("small", small), node.add("big", big)
    node.corrupt(small[280_000:280_100])
    node.corrupt(big[2 * MiB + 1000 : 2 * MiB + 1100])
    client = await start()
    bad = await client.get(f"/ipfs/{small_cid}?format=car")
    assert bad.status == 502 and (await bad.json())["error"] == "corrupt_block"
    streamed = await client.get(f"/ipfs/{big_cid}?format=car")
    assert streamed.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        async for _ in streamed.content.iter_any():
            pass


async def test_private_blocks_are_refused_before_anything_is_sent(gw: tuple[Node, Start]) -> None:
    node, start = gw
    big = seeded_bytes("private", 2 * MiB)
    root = node.add("dir", {"public.txt": b"open", "secret.bin": big})
    secret = node.child(root, "secret.bin")
    leaf = node.dfs(secret)[-1]
    client = await start(privacy=Privacy({secret, leaf}))
    refused = await client.get(f"/ipfs/{secret}?format=raw")
    assert refused.status == 403 and (await refused.json())["error"] == "private_data"
    assert (await client.get(f"/ipfs/{root}/secret.bin?format=car&dag-scope=block")).status == 403
    assert (await client.get(f"/ipfs/{root}/public.txt?format=car")).status == 200
    late = await start(privacy=Privacy({leaf}))
    whole = await late.get(f"/ipfs/{root}?format=car")  # the private leaf is past the first MiB
    assert whole.status == 200
    received = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in whole.content.iter_any():
            received += chunk
    assert bytes(node.store.get(leaf)) not in bytes(received)


async def test_car_streams_are_bounded(gw: tuple[Node, Start]) -> None:
    node, start = gw
    cid = node.add("f", b"x")
    client = await start()
    client.app[STREAMS_KEY][0] = MAX_STREAMS
    busy = await client.get(f"/ipfs/{cid}?format=car")
    assert busy.status == 429 and (await busy.json())["error"] == "too_many_streams"
    assert busy.headers["Retry-After"] == "1"
    assert (await client.get(f"/ipfs/{cid}?format=raw")).status == 200  # a block costs no stream
    client.app[STREAMS_KEY][0] = 0
    assert (await client.get(f"/ipfs/{cid}?format=car")).status == 200
    assert client.app[STREAMS_KEY][0] == 0


def test_a_huge_dag_streams_in_bounded_memory() -> None:
    """A 2 GiB file DAG (synthetic blocks, never stored) goes through the CAR walk block by block."""
    import tracemalloc

    from storage.dagpb import PBLink, PBNode
    from storage.dagscope import Resolved, Scope, car_blocks
    from storage.unixfs.data import NodeType, UnixFSData

    leaf_data = os.urandom(1 << 18)
    leaf = CID.for_block(leaf_data)
    count = 8192  # 8192 x 256 KiB = 2 GiB, the same leaf every time (dups=y sends each)
    node = PBNode([PBLink(leaf, "", len(leaf_data))] * count,
                  UnixFSData(NodeType.FILE, filesize=count << 18, blocksizes=(1 << 18,) * count).encode())  # fmt: skip
    root, root_data = node.encode_with_cid()
    blocks = {root: root_data, leaf: leaf_data}
    resolved = Resolved((), (root,), root, root_data, None, False)
    tracemalloc.start()
    sent = 0
    for _cid, data in car_blocks(blocks.__getitem__, resolved, Scope.ALL, None, dups=True):
        sent += len(data)  # the section is built the same way for every block (storage/car.py)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sent > 2 << 30 and peak < 8 * MiB


async def test_answers_validate_against_the_openapi_document(gw: tuple[Node, Start]) -> None:
    from tests.node.test_openapi import DOC, check

    node, start = gw
    root = node.add("dir", {"a.txt": b"alpha"})
    client = await start()
    for url, template, headers in [
        (f"/ipfs/{root}?format=raw", "/ipfs/{cid}", {}),
        (f"/ipfs/{root}?format=car", "/ipfs/{cid}", {}),
        (f"/ipfs/{root}/a.txt?format=car", "/ipfs/{cid}/{path}", {}),
        (f"/ipfs/{root}/a.txt?format=raw", "/ipfs/{cid}/{path}", {"Range": "bytes=0-1"}),
        (f"/ipfs/{root}/a.txt?format=raw", "/ipfs/{cid}/{path}", {"Range": "bytes=9-"}),
        (f"/ipfs/{root}", "/ipfs/{cid}", {}),
        (f"/ipfs/{root}", "/ipfs/{cid}", {"Accept": "text/html"}),
        (f"/ipfs/{root}/nope?format=car", "/ipfs/{cid}/{path}", {}),
        ("/ipfs/nope?format=raw", "/ipfs/{cid}", {}),
        (f"/ipfs/{CID.for_block(b'x')}?format=raw", "/ipfs/{cid}", {"Cache-Control": "only-if-cached"}),
    ]:
        await check(await client.get(url, headers=headers), template, "get")
    cached = await client.get(f"/ipfs/{root}?format=raw", headers={"If-None-Match": f'"{root}.raw"'})
    assert cached.status == 304 and "304" in DOC["paths"]["/ipfs/{cid}"]["get"]["responses"]
