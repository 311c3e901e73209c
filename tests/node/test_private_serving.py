"""The serving gate over real node processes and real libp2p: private blocks reach only named holders.

The red-team cases of the private-data issue: an outside peer with a fresh identity asks
for an "EU-only" dataset over /mycel/blocks; an HTTP client asks a node of another region
(which would fetch it, serve it and keep a copy) and one of the same region; only the
replica holder the policy names gets the blocks.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.exchange import PROTOCOL
from node.identity import NodeIdentity
from node.p2p.network import P2PNetwork
from sdk import Keypair, NodeApiError, PolicyTerms, SyncClient
from storage import dagcbor
from storage.cid import CID, RAW
from storage.peerid import peer_id_for
from storage.privacy.policy import Policy, Release, Revocation
from tests.node.test_cluster import http, metric
from tests.support import CliRunner, seeded_bytes


class Owner:
    """The dataset owner's key: it signs on the test's side, never reaches a node."""

    def __init__(self) -> None:
        self.key = nacl.signing.SigningKey.generate()
        self.id = peer_id_for(bytes(self.key.verify_key))

    def sign(self, message: bytes) -> bytes:
        return bytes(self.key.sign(message).signature)


def put_private(api_url: str, data: bytes, owner: Owner) -> str:
    status, body = http(
        "POST", f"{api_url}/v1/blobs?owner={owner.id}", data, {"Content-Type": "application/octet-stream"}
    )
    assert status == 201, body
    cid: str = json.loads(body)["cid"]
    return cid


def post_policy(api_url: str, envelope: bytes) -> tuple[int, Any]:
    record = json.dumps({"record": envelope.hex()}).encode()
    status, body = http("POST", f"{api_url}/v1/policies", record, {"Content-Type": "application/json"})
    return status, json.loads(body)


def ask_over_libp2p(target: Any, wants: list[CID]) -> tuple[list[bytes], list[bytes]]:
    """A peer with a fresh identity asks ``target`` for blocks and for a ``have`` of the first."""

    async def ask() -> tuple[list[bytes], list[bytes]]:
        outsider = P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"])
        await outsider.start()
        try:
            await outsider.connect(target.multiaddr)
            want = await outsider.request(target.peer_id, PROTOCOL, dagcbor.encode({"want": wants}))
            have = await outsider.request(target.peer_id, PROTOCOL, dagcbor.encode({"have": wants[:1]}))
            return want, have
        finally:
            await outsider.stop()

    return asyncio.run(ask())


def test_private_blocks_go_only_to_the_named_holder(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    source, holder, same_region = cluster(3, regions=["eu", "us", "eu"], timeout=20)
    owner = Owner()
    data = seeded_bytes("private", 700_000)  # 3 leaves + a root
    root = put_private(source.api_url, data, owner)
    _, body = http("GET", f"{source.api_url}/v1/policies/{root}")
    assert json.loads(body)["state"] == "locked"  # private from the moment the upload answered

    policy = Policy(CID.parse(root), owner.id, 1, int(time.time()) + 3600, holders=(holder.peer_id,),
                    release=Release(max_bytes=1 << 20))  # fmt: skip
    signed = policy.sign(owner.sign)
    status, answer = post_policy(source.api_url, signed.data)  # only the source is told; the holder learns it
    assert status == 201 and answer["policy"] == str(signed.cid)
    _, body = http("GET", f"{source.api_url}/v1/policies/{root}")
    assert json.loads(body)["state"] == "active"

    # an outside peer with a fresh identity, over /mycel/blocks: root and an inner block
    leaf = CID.for_block(data[: 256 << 10], RAW)  # the first chunk: an inner block of the dataset
    want, have = ask_over_libp2p(source, [CID.parse(root), leaf])
    assert [frame[:1] for frame in want] == [b"\x00", b"\x00"] and have == [b"\x00"]  # "not held here"
    assert metric(source.api_url, "mycel_blocks_served_total") == 0
    assert metric(source.api_url, "mycel_bytes_out_total") == 0

    # HTTP: on the source (403), and on a node of the same region that would fetch it for the client
    assert http("GET", f"{source.api_url}/v1/blobs/{root}")[0] == 403
    assert http("GET", f"{source.api_url}/v1/blobs/{root}/providers")[0] == 403
    status, _ = http("GET", f"{same_region.api_url}/v1/blobs/{root}")
    assert status == 404  # nobody would give it the blocks
    assert metric(same_region.api_url, "mycel_blocks_stored_total") == 0  # and it kept nothing
    assert metric(source.api_url, "mycel_bytes_out_total") == 0
    assert metric(source.api_url, "mycel_private_blocks_refused_total") >= 3

    # the named holder (in another region: peer IDs decide, not labels) gets the whole DAG
    status, _ = http("POST", f"{holder.api_url}/v1/pins/{root}", headers={"Content-Type": "application/json"})
    assert status == 200
    assert metric(holder.api_url, "mycel_blocks_stored_total") == 4
    assert metric(source.api_url, "mycel_blocks_served_total") == 4
    # ... and holds it privately in turn (it learnt the policy with the source's have answer):
    # it serves neither HTTP nor the same-region node
    _, body = http("GET", f"{holder.api_url}/v1/policies/{root}")
    assert json.loads(body)["policy"] == str(signed.cid)
    assert http("GET", f"{holder.api_url}/v1/blobs/{root}")[0] == 403
    assert http("GET", f"{same_region.api_url}/v1/blobs/{root}")[0] == 404
    assert metric(same_region.api_url, "mycel_blocks_stored_total") == 0
    assert metric(holder.api_url, "mycel_blocks_served_total") == 0

    # a stranger cannot make public content private (nor stop a node serving it) with a policy of its own
    status, body = http("POST", f"{source.api_url}/v1/blobs", b"public", {"Content-Type": "application/octet-stream"})
    public = CID.parse(json.loads(body)["cid"])
    status, answer = post_policy(
        source.api_url, Policy(public, Owner().id, 1, int(time.time()) + 60).sign(owner.sign).data
    )
    assert status == 400  # signed by the wrong key: forged
    stranger = Owner()
    status, answer = post_policy(
        source.api_url, Policy(public, stranger.id, 1, int(time.time()) + 60).sign(stranger.sign).data
    )
    assert status == 409 and answer["error"] == "public_here"

    # a forged replacement naming the same-region node is refused; the owner's revocation locks it
    forged = Policy(CID.parse(root), owner.id, 2, int(time.time()) + 3600, holders=(same_region.peer_id,))
    status, answer = post_policy(source.api_url, forged.sign(Owner().sign).data)
    assert status == 400 and answer["error"] == "forged"
    revoked = Revocation(CID.parse(root), owner.id, 1, int(time.time())).sign(owner.sign)
    assert post_policy(source.api_url, revoked.data)[0] == 201
    status, answer = post_policy(source.api_url, signed.data)  # replaying the old policy does not reopen it
    assert status == 409 and answer["error"] == "stale"
    want, _ = ask_over_libp2p(source, [leaf])
    assert [frame[:1] for frame in want] == [b"\x00"]
    assert metric(source.api_url, "mycel_blocks_served_total") == 4  # nothing more after the revocation

    # the SDK and the CLI: the owner's key signs on this side only; the node holds the data privately
    key_file = tmp_path / "owner.key"
    with SyncClient(source.api_url) as client:
        second = client.put(seeded_bytes("second", 1000), PolicyTerms(holders=(holder.peer_id,)),
                            Keypair.load_or_create(key_file))  # fmt: skip
        assert client.policy(second)["state"] == "active"
        with pytest.raises(NodeApiError, match="wrong_owner"):  # another key cannot revoke (nor replace) it
            client.apply_policy(Keypair.generate().revoke(second, 1).data)
    assert http("GET", f"{source.api_url}/v1/blobs/{second}")[0] == 403
    api = ("--api", source.api_url)
    revoked_by_cli = mycel("data", "revoke", str(second), "--version", "1", "--key", key_file, *api)
    assert revoked_by_cli.returncode == 0, revoked_by_cli.stderr
    assert json.loads(revoked_by_cli.stdout)["state"] == "revoked"
