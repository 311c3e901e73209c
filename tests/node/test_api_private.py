"""GET /v1/private (the dashboard's private-data table) and the refusal counters behind it.

The real API app over a real block store and privacy registry: a private upload, its owner's
policy, an HTTP client refused, a job refused and one run by a grant holder (through the real
running gate); the listing and ``/metrics`` must show each, by reason.
"""

from __future__ import annotations

import time
from typing import Any

from node.privacy.running import PrivateJobRefused, RunGate
from sdk.keys import Keypair
from storage.cid import CID, DAG_CBOR
from storage.privacy.access import Access, job_subject
from storage.privacy.policy import Policy, Release
from tests.node.apinode import api_node
from tests.support import seeded_bytes

__all__ = ["api_node"]  # the fixture, used by name


async def test_private_datasets_are_listed_with_policy_holders_grants_and_refusals(api_node: Any) -> None:
    client, node, _ = api_node
    owner, grantee, stranger = Keypair.generate(), Keypair.generate(), Keypair.generate()
    holder = Keypair.generate().id  # this node, as the running gate knows it
    assert (await (await client.get("/v1/private")).json()) == {"datasets": [], "refused": {}}

    upload = await client.post(f"/v1/blobs?owner={owner.id}", data=seeded_bytes("private", 5000))
    assert upload.status == 201
    dataset = CID.parse((await upload.json())["cid"])
    agent = CID.for_block(b"the approved agent", DAG_CBOR)
    policy = Policy(dataset, owner.id, 1, int(time.time()) + 600, holders=(holder,), agents=(agent,),
                    release=Release(max_bytes=4096)).sign(owner.sign)  # fmt: skip
    assert (await client.post("/v1/policies", json={"record": policy.data.hex()})).status == 201

    assert (await client.get(f"/v1/blobs/{dataset}")).status == 403  # an HTTP client: refused, counted

    gate = RunGate(node.privacy, holder, lambda: "eu", node.metrics)
    requester = Keypair.generate().id
    inputs = {"data": dataset}

    def access(key: Keypair, grants: dict[str, tuple[bytes, ...]]) -> bytes:
        return Access(key.id, job_subject(agent, inputs, ()), requester, int(time.time()) + 60, grants).sign(key.sign)

    chain = owner.grant(grantee.id, dataset, 600, [agent])
    assert gate.check(requester, agent, inputs, (), access(grantee, {str(dataset): chain})) is not None
    try:
        gate.check(requester, agent, inputs, (), access(stranger, {}))
        raise AssertionError("a client with neither a listing nor a grant must be refused")
    except PrivateJobRefused as exc:
        assert exc.reason == "not_granted"

    listed = await (await client.get("/v1/private")).json()
    assert listed["refused"] == {"http": 1, "not_granted": 1}
    [entry] = listed["datasets"]
    assert entry == {
        "dataset": str(dataset),
        "owner": owner.id,
        "state": "active",
        "version": 1,
        "policy": str(policy.cid),
        "holders": [holder],
        "expires": policy.policy.expires,
        "agents": [str(agent)],
        "publishers": [],
        "clients": 0,
        "max_result_bytes": 4096,
        "grants": 1,
        "refused": {"http": 1, "not_granted": 1},
    }
    metrics = await (await client.get("/metrics")).text()
    assert 'mycel_private_refused_total{reason="http"} 1.0' in metrics
    assert 'mycel_private_refused_total{reason="not_granted"} 1.0' in metrics
