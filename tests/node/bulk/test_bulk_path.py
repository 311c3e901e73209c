"""The bulk CAR path between in-process nodes: real libp2p (tickets), real HTTP(S), real LMDB.

A hostile provider here is a real HTTP server that serves a spoiled CAR of the real DAG,
reached through a ticket its libp2p side hands out; the fetch must refuse the stream and
finish over /mycel/blocks. Auth and the private-data rules are checked on the real server.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import nacl.signing
import pytest
from aiohttp import web

from node.bulk import peerauth, ticket
from node.bulk.client import BulkClient, BulkUnavailable
from node.bulk.server import MAX_STREAMS_PER_PEER, BulkServer
from node.errors import NetworkError
from node.exchange import BlockExchange
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from node.privacy.gate import ServingGate
from node.privacy.registry import PrivacyRegistry
from storage.blockstore import BlockStore
from storage.car import car_header, car_section
from storage.cid import CID
from storage.files import add_path, cat
from storage.peerid import peer_id_for, public_key_protobuf
from storage.privacy.policy import Policy
from tests.support import seeded_bytes

Make = Callable[[int], Awaitable[list["Node"]]]
SIZE = 1_300_000  # 5 leaves of 256 KiB and a root


class Node:
    """What NodeService wires for the bulk path, in-process."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.identity = NodeIdentity(nacl.signing.SigningKey.generate())
        self.store = BlockStore(tmp / name / "blocks", map_size=32 << 20)
        self.network = P2PNetwork(self.identity, ["/ip4/127.0.0.1/tcp/0"])
        self.metrics = Metrics()
        self.registry = PrivacyRegistry(tmp / name / "privacy")
        self.gate = ServingGate(self.registry, lambda peer: None, self.metrics)
        self.exchange = BlockExchange(self.store, self.network, self.metrics, self.gate)
        self.server = BulkServer(self.store, self.gate, self.identity, self.metrics, tmp / name / "bulk")
        self.tickets: Callable[[str, bytes], Coroutine[Any, Any, list[bytes]]] = (
            self.server.ticket
        )  # a test may swap it
        self.network.handle(ticket.PROTOCOL, lambda peer, request: self.tickets(peer, request))
        self.offered: dict[str, str] = {}  # what the announcements said, in a real node
        self.client = BulkClient(self.network, self.offered.get, self.metrics, self.identity)
        self.exchange.bulk = self.client

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    async def start(self) -> None:
        await self.network.start()
        await self.server.start("127.0.0.1", "127.0.0.1")

    async def stop(self) -> None:
        await self.network.stop()
        await self.server.stop()
        await self.client.close()
        self.exchange.close()
        self.registry.close()
        self.store.close()


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[Node] = []

    async def make(count: int) -> list[Node]:
        for _ in range(count):
            node = Node(tmp_path, f"n{len(made)}")
            await node.start()
            for other in made:
                await node.network.connect((await other.network.addrs())[0])
                node.offered[other.peer_id], other.offered[node.peer_id] = other.server.http_url, node.server.http_url
            made.append(node)
        return made[-count:]

    yield make
    for node in made:
        await node.stop()


def content(tmp_path: Path, node: Node, seed: str) -> tuple[CID, bytes]:
    data = seeded_bytes(seed, SIZE)
    (tmp_path / seed).write_bytes(data)
    return add_path(node.store, tmp_path / seed).cid, data


def dag_bytes(node: Node, root: CID) -> int:
    return sum(len(block) for _, block in node.store.walk(root))


async def hostile(tmp_path: Path, body: bytes) -> tuple[web.AppRunner, str]:
    """A real HTTP server answering every /car request with ``body``."""

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/vnd.ipld.car")

    app = web.Application()
    app.add_routes([web.get("/car/{cid}", serve)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def point_tickets_at(node: Node, url: str) -> None:
    """``node``'s libp2p side hands out tickets naming ``url`` (its signed token, another server)."""

    async def forged(peer: str, request: bytes) -> list[bytes]:
        token = ticket.issue(node.identity.sign, node.peer_id, peer, "http")
        return [ticket.Ticket(url, token, None).encode()]

    node.tickets = forged


async def test_two_nodes_move_a_dag_over_the_car_path(nodes: Make, tmp_path: Path) -> None:
    provider, fetcher = await nodes(2)
    root, data = content(tmp_path, provider, "bulk")
    total = dag_bytes(provider, root)
    stats = await fetcher.exchange.fetch(root, providers=[provider.peer_id])
    assert stats.by_path == {"car": total} and stats.blocks_fetched == 6 and stats.bad_providers == 0
    assert fetcher.metrics.value("fetch_bytes_total", path="car") == total
    assert fetcher.metrics.value("fetch_bytes_total", path="blocks") == 0
    assert provider.metrics.value("bulk_bytes_out_total") > SIZE  # the CAR: blocks plus framing
    assert provider.metrics.value("blocks_served_total") == 6 and provider.metrics.value("bytes_out_total") == total
    assert b"".join(cat(fetcher.store, root)) == data
    assert fetcher.exchange.bandwidth[provider.peer_id] > 1e6
    assert provider.metrics.value("bulk_peer_auth_total", step="handshake") == 1  # libp2p-PeerID, not the token
    assert fetcher.client.auth is not None and fetcher.client.auth.has_bearer(
        provider.peer_id, provider.server.http_url
    )


async def test_the_bearer_is_reused_and_a_refused_one_is_replaced_by_the_server_initiated_flow(
    nodes: Make, tmp_path: Path
) -> None:
    provider, fetcher = await nodes(2)
    first, second, third = (content(tmp_path, provider, seed)[0] for seed in ("b1", "b2", "b3"))
    await fetcher.exchange.fetch(first, providers=[provider.peer_id])
    await fetcher.exchange.fetch(second, providers=[provider.peer_id])
    assert provider.metrics.value("bulk_peer_auth_total", step="handshake") == 1
    assert provider.metrics.value("bulk_peer_auth_total", step="bearer") == 1
    provider.server.peerauth._key = os.urandom(32)  # as after a restart: every bearer it gave is void
    stats = await fetcher.exchange.fetch(third, providers=[provider.peer_id])
    assert stats.by_path == {"car": dag_bytes(provider, third)}  # the 401 challenge answered, then served
    assert provider.metrics.value("bulk_peer_auth_total", step="handshake") == 2
    assert provider.metrics.value("bulk_refused_total", reason="peer_auth") == 1  # the stale bearer


async def peer_auth_get(url: str, root: CID, authorization: str | None, host: str | None = None) -> tuple[int, Any]:
    headers = {} if authorization is None else {"Authorization": authorization}
    if host is not None:
        headers["Host"] = host
    async with aiohttp.ClientSession() as session, session.get(f"{url}/car/{root}", headers=headers, ssl=False) as got:
        body = await got.json() if got.content_type == "application/json" else None
        return got.status, (body, got.headers.get("WWW-Authenticate"), got.headers.get("Authentication-Info"))


async def test_hostile_peer_auth_headers_are_refused_with_401_and_a_reason(nodes: Make, tmp_path: Path) -> None:
    provider, fetcher = await nodes(2)
    root, _ = content(tmp_path, provider, "hostile-auth")
    url = provider.server.https_url
    host = url.split("//", 1)[1]
    me = fetcher.identity
    pk = public_key_protobuf(me.public_key)

    async def challenge() -> dict[str, str]:
        status, (body, offered, _) = await peer_auth_get(url, root, None)
        assert status == 401 and body["error"] == "unauthenticated"
        return peerauth.parse_params(offered)

    def answer(params: dict[str, str], hostname: str = host, sign: Any = me.sign, key: bytes = pk) -> str:
        signed = peerauth.client_answer(sign, key, params, hostname, provider.server.peerauth.public_key)
        mine = peerauth.new_challenge()
        return peerauth.encode_params({"public-key": peerauth.b64encode(key), **signed, "challenge-server": mine})

    good = answer(await challenge())
    status, (_, _, info) = await peer_auth_get(url, root, good)
    assert status == 200 and "bearer=" in (info or "")
    stranger = NodeIdentity(nacl.signing.SigningKey.generate())
    rsa = peerauth.encode_params(
        {"challenge-server": peerauth.new_challenge(), "public-key": peerauth.b64encode(b"\x08\x00\x12\x01a")}
    )
    expired = await challenge()
    provider_auth = provider.server.peerauth
    cases = {
        "bad sig": (answer(await challenge(), sign=stranger.sign), "signature does not verify"),
        "wrong hostname": (answer(await challenge(), hostname="evil.example"), "signature does not verify"),
        "replayed opaque": (good, "replay"),
        "oversized": ('libp2p-PeerID opaque="' + "A" * 4000 + '"', "longer than 2048"),
        "wrong key type": (rsa, "only Ed25519"),
        "forged bearer": ('libp2p-PeerID bearer="' + peerauth.b64encode(bytes(64)) + '"', "not made by this server"),
    }
    for why, (header, reason) in cases.items():
        status, (body, offered, _) = await peer_auth_get(url, root, header)
        assert status == 401 and body["error"] == "bad_peer_auth" and reason in body["detail"], why
        assert "challenge-client=" in (offered or ""), why  # a fresh challenge to start again
    provider_auth.clock = lambda: time.time() + peerauth.CHALLENGE_TTL + 1  # an opaque answered after its time
    status, (body, _, _) = await peer_auth_get(url, root, answer(expired))
    provider_auth.clock = time.time
    assert status == 401 and "expired" in body["detail"]
    status, (body, _, _) = await peer_auth_get(url, root, good, host="evil.example")
    assert status == 401 and "does not answer for the host" in body["detail"]
    assert provider.metrics.value("bulk_refused_total", reason="peer_auth") == len(cases) + 2
    assert provider_auth.peer_id == provider.peer_id


async def test_a_bearer_won_over_plain_http_does_not_open_the_tls_listener(nodes: Make, tmp_path: Path) -> None:
    provider, fetcher = await nodes(2)
    root, _ = content(tmp_path, provider, "scoped")
    plain, secure = provider.server.http_url, provider.server.https_url
    assert fetcher.client.auth is not None
    async with aiohttp.ClientSession() as session:
        got = await fetcher.client.auth.get(session, f"{plain}/car/{root}", provider.peer_id, {})
        async with got:
            assert got.status == 200
    bearer = fetcher.client.auth._bearers[(provider.peer_id, plain)][0]
    status, (body, _, _) = await peer_auth_get(secure, root, bearer, host=plain.split("//", 1)[1])
    assert status == 401 and "plain listener" in body["detail"]


async def test_corrupted_car_is_refused_and_the_fetch_completes_elsewhere(nodes: Make, tmp_path: Path) -> None:
    evil, honest, fetcher = await nodes(3)
    root, data = content(tmp_path, honest, "spoiled")
    blocks = list(honest.store.walk(root))
    cid, leaf = blocks[3]
    spoiled = [*blocks[:3], (cid, bytes([leaf[0] ^ 1]) + leaf[1:]), *blocks[4:]]
    runner, url = await hostile(tmp_path, car_header([root]) + b"".join(car_section(c, d) for c, d in spoiled))
    try:
        point_tickets_at(evil, url)
        del fetcher.offered[honest.peer_id]  # the honest one only speaks /mycel/blocks
        stats = await fetcher.exchange.fetch(root, providers=[evil.peer_id, honest.peer_id])
    finally:
        await runner.cleanup()
    assert stats.bad_providers == 1 and fetcher.metrics.value("blocks_rejected_total") == 1
    assert stats.by_path["car"] == sum(len(d) for _, d in blocks[:3])  # verified before the bad one: kept
    assert (
        stats.by_path["blocks"] == dag_bytes(honest, root) - stats.by_path["car"]
    )  # the rest, resumed over the fallback
    assert evil.metrics.value("blocks_served_total") == 0  # dropped: never asked again
    assert b"".join(cat(fetcher.store, root)) == data


async def test_truncated_car_falls_back_to_the_block_protocol(nodes: Make, tmp_path: Path) -> None:
    provider, fetcher = await nodes(2)
    root, data = content(tmp_path, provider, "truncated")
    blocks = list(provider.store.walk(root))
    whole = car_header([root]) + b"".join(car_section(c, d) for c, d in blocks)
    runner, url = await hostile(tmp_path, whole[: len(whole) // 2])
    try:
        point_tickets_at(provider, url)
        stats = await fetcher.exchange.fetch(root, providers=[provider.peer_id])
    finally:
        await runner.cleanup()
    assert stats.bad_providers == 0  # a stream that stops early is not a lie: same provider, other path
    total = dag_bytes(provider, root)
    assert 0 < stats.by_path["car"] < total and stats.by_path["car"] + stats.by_path["blocks"] == total
    assert provider.metrics.value("blocks_served_total") < len(blocks)  # resumed, not restarted
    assert b"".join(cat(fetcher.store, root)) == data


async def get_car(url: str, root: CID, token: bytes | None, pin: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": ticket.authorization(token)} if token is not None else {}
    ssl: aiohttp.Fingerprint | bool = aiohttp.Fingerprint(pin) if pin else True
    async with aiohttp.ClientSession() as session, session.get(f"{url}/car/{root}", headers=headers, ssl=ssl) as got:
        return got.status, await got.read()


async def test_bad_expired_forged_and_foreign_tickets_are_refused(nodes: Make, tmp_path: Path) -> None:
    provider, fetcher = await nodes(2)
    root, _ = content(tmp_path, provider, "auth")
    url, own = provider.server.http_url, provider.peer_id
    valid = (await fetcher.client.get_ticket(own, root)).token
    assert (await get_car(url, root, valid))[0] == 200
    stranger = NodeIdentity(nacl.signing.SigningKey.generate())
    refused = {
        "garbage": b"not a token",
        "expired": ticket.issue(provider.identity.sign, own, fetcher.peer_id, "http", now=time.time() - 3600),
        "forged": ticket.issue(stranger.sign, own, fetcher.peer_id, "http"),  # names the provider, signed by another
        "foreign": ticket.issue(stranger.sign, stranger.peer_id, fetcher.peer_id, "http"),  # another node's own
        "far_future": ticket.issue(provider.identity.sign, own, fetcher.peer_id, "http", now=time.time() + 3600),
        "wrong_scope": ticket.issue(provider.identity.sign, own, fetcher.peer_id, "tls"),
    }
    for why, token in refused.items():
        status, body = await get_car(url, root, token)
        assert status == 401 and b"bad_ticket" in body, why
    assert provider.metrics.value("bulk_refused_total", reason="ticket") == len(refused)
    status, body = await get_car(url, root, None)  # no credentials: the spec's challenge, not a ticket error
    assert status == 401 and b"unauthenticated" in body
    provider.server._streams[fetcher.peer_id] = MAX_STREAMS_PER_PEER  # as if that many were streaming now
    assert (await get_car(url, root, valid))[0] == 429


def _shape(answer: tuple[int, bytes], cid: CID) -> tuple[int, bytes]:
    """An answer with the CID asked for taken out: what it tells apart from the CID itself."""
    return answer[0], answer[1].replace(str(cid).encode(), b"CID")


async def test_private_dag_goes_over_tls_to_the_allowed_peer_only(nodes: Make, tmp_path: Path) -> None:
    provider, allowed, outsider = await nodes(3)
    root, data = content(tmp_path, provider, "private")
    owner = nacl.signing.SigningKey.generate()
    owner_id = peer_id_for(bytes(owner.verify_key))
    provider.registry.lock(root, owner_id, [cid for cid, _ in provider.store.walk(root)])
    policy = Policy(root, owner_id, 1, int(time.time()) + 600, holders=(allowed.peer_id,))
    provider.registry.apply(policy.sign(lambda m: bytes(owner.sign(m).signature)).data)

    # the outsider is answered exactly as for a root this node never stored: ticket, status, body
    absent = CID.parse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    for_absent = await outsider.client.get_ticket(provider.peer_id, absent)
    issued = await outsider.client.get_ticket(provider.peer_id, root)
    assert (issued.url, issued.cert_sha256) == (for_absent.url, None) == (provider.server.http_url, None)
    not_held = await get_car(for_absent.url, absent, for_absent.token)
    assert not_held[0] == 404
    refused = await get_car(issued.url, root, issued.token)
    assert _shape(refused, root) == _shape(not_held, absent)
    tls = ticket.issue(provider.identity.sign, provider.peer_id, outsider.peer_id, "tls")  # over TLS too
    pin = (await allowed.client.get_ticket(provider.peer_id, root)).cert_sha256
    refused = await get_car(provider.server.https_url, root, tls, pin)
    assert _shape(refused, root) == _shape(await get_car(provider.server.https_url, absent, tls, pin), absent)
    status, body = refused
    assert status == 404 and b"not_found" in body and len(body) < 400  # nothing of the DAG, nor that it is here
    with pytest.raises(BulkUnavailable, match="404"):
        async for _ in outsider.client.blocks(provider.peer_id, root):
            pass
    plain = ticket.issue(provider.identity.sign, provider.peer_id, allowed.peer_id, "http")
    assert (await get_car(provider.server.http_url, root, plain))[0] == 404  # never over plain HTTP
    granted = await allowed.client.get_ticket(provider.peer_id, root)
    assert granted.url == provider.server.https_url and granted.cert_sha256 is not None  # private: TLS
    with pytest.raises(aiohttp.ServerFingerprintMismatch):  # the pin holds: another certificate is refused
        await get_car(granted.url, root, granted.token, bytes(32))

    stats = await allowed.exchange.fetch(root)  # providers probed: the holder learns the policy first
    assert stats.by_path == {"car": dag_bytes(provider, root)}
    assert b"".join(cat(allowed.store, root)) == data
    assert allowed.registry.datasets_of(root)  # stored as a private replica (the policy came with the probe)
    # both peers proved their peer IDs by the libp2p-PeerID handshake over TLS (the outsider's was refused by policy)
    assert provider.metrics.value("bulk_peer_auth_total", step="handshake") == 2


async def test_a_private_block_inside_a_public_dag_aborts_the_stream(nodes: Make, tmp_path: Path) -> None:
    provider, fetcher = await nodes(2)
    root, _ = content(tmp_path, provider, "mixed")
    leaf = [cid for cid, _ in provider.store.walk(root)][2]
    owner = peer_id_for(bytes(nacl.signing.SigningKey.generate().verify_key))
    provider.registry.lock(CID.for_block(b"another dataset"), owner, [leaf])  # the leaf is private elsewhere
    with pytest.raises(NetworkError):
        await fetcher.exchange.fetch(root, providers=[provider.peer_id])
    assert provider.metrics.value("bulk_refused_total", reason="aborted") == 1  # after the headers: cut off
    assert not fetcher.store.has(leaf)  # neither path gave it out
    assert fetcher.metrics.value("fetch_bytes_total", path="car") == 0  # the chunk holding it never left


async def test_the_auth_endpoint_runs_only_the_handshake_and_its_bearer_opens_the_car(
    nodes: Make, tmp_path: Path
) -> None:
    provider, fetcher = await nodes(2)
    root, _ = content(tmp_path, provider, "endpoint")
    base = provider.server.https_url
    pin = aiohttp.Fingerprint(provider.server._cert_sha256)
    assert fetcher.client.auth is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/.well-known/libp2p/protocols", ssl=pin) as got:
            path = (await got.json())["protocols"][peerauth.PROTOCOL_ID]["path"]
        async with await fetcher.client.auth.get(session, f"{base}{path}", provider.peer_id, {}, ssl=pin) as got:
            assert got.status == 200 and await got.read() == b""
        async with await fetcher.client.auth.get(session, f"{base}/car/{root}", provider.peer_id, {}, ssl=pin) as got:
            assert got.status == 200 and got.content_type == "application/vnd.ipld.car"
            await got.read()
    assert provider.metrics.value("bulk_peer_auth_total", step="handshake") == 1
    assert provider.metrics.value("bulk_peer_auth_total", step="bearer") == 1


async def test_a_provider_that_offers_no_peer_auth_challenge_gets_the_tickets_token(
    nodes: Make, tmp_path: Path
) -> None:
    provider, fetcher = await nodes(2)
    root, data = content(tmp_path, provider, "older")

    def tickets_only(*args: object, **kwargs: object) -> peerauth.Verdict:
        return peerauth.Verdict(None, {}, "this server knows only tickets")  # a 401 with no challenge

    provider.server.peerauth.authenticate = tickets_only  # type: ignore[method-assign]
    stats = await fetcher.exchange.fetch(root, providers=[provider.peer_id])
    assert stats.by_path == {"car": dag_bytes(provider, root)}
    assert provider.metrics.value("bulk_peer_auth_total", step="handshake") == 0
    assert b"".join(cat(fetcher.store, root)) == data
