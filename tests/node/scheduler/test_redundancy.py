"""Redundant runs: matching results pass, a node that lies about its result is caught."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nacl.signing

from agents import receipt as receipts
from agents.outcome import Outcome
from node import announce
from node.identity import NodeIdentity
from node.scheduler import protocol
from node.scheduler.protocol import PROTOCOL, Offer, OfferAnswer, OfferRun, Run, RunAnswer
from sdk import SyncClient
from storage.cid import CID
from tests.node.scheduler.test_jobs_cluster import post, wait_final
from tests.support import REPO_ROOT, CliRunner, announcement_payload, gossip_peer


def _setup(nodes: list[Any], mycel: CliRunner, tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("to be or not to be\n" * 100)
    data = mycel("put", tmp_path / "text", data_dir_override=Path(nodes[0].data_dir)).stdout.strip()
    wordcount = REPO_ROOT / "examples" / "wasm-wordcount"
    agent = mycel("agent", "pack", wordcount, data_dir_override=Path(nodes[0].data_dir)).stdout.strip()
    return agent, data


def test_two_honest_nodes_agree(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    nodes = cluster(2, regions=["eu", "eu"])
    agent, data = _setup(nodes, mycel, tmp_path)
    status, submitted = post(f"{nodes[0].api_url}/v1/jobs", {"agent": agent, "inputs": {"text": data}, "redundancy": 2})
    assert status == 201
    job = wait_final(nodes[0].api_url, submitted["job_id"])
    assert job["state"] == "done", job["transitions"]
    assert set(job["results"]) == {nodes[0].peer_id, nodes[1].peer_id}
    assert len(set(job["results"].values())) == 1
    with SyncClient(nodes[0].api_url) as client:  # the SDK's view: how the result was corroborated
        corroboration = client.job(submitted["job_id"]).corroboration
    assert corroboration["summary"] == "2 distinct operators agreed of 2 run"
    assert sorted(corroboration["agreed"]) == sorted(job["results"]) and corroboration["evidence"] == []


def test_a_node_returning_a_wrong_result_is_caught(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    (honest,) = cluster(1, regions=["eu"])
    agent, data = _setup([honest], mycel, tmp_path)
    liar_key = nacl.signing.SigningKey.generate()
    liar = NodeIdentity(liar_key)
    forged_result = CID.for_block(b"not what the agent computed", 0x70)

    async def lie(peer: str, request: bytes) -> list[bytes]:
        message = protocol.decode_request(request)
        if isinstance(message, Offer | OfferRun):  # accepted: the run follows on its own stream
            return [protocol.encode(OfferAnswer(True, "always"))]
        assert isinstance(message, Run)
        record = receipts.Receipt(
            job_id=message.job_id,
            agent=message.spec.agent,
            inputs=dict(message.spec.inputs),
            result=forged_result,
            status="ok",
            runtime="wasm",
            runtime_version="wasmtime-50.0.1",
            usage=receipts.Usage(0.1, 1, 0.1, 1, 1),
            started_at=time.time(),
            ended_at=time.time(),
            node=liar.peer_id,
        )
        signed = receipts.sign(record, liar_key)  # validly signed: only the comparison can catch it
        return [protocol.encode(RunAnswer(Outcome.ok(), forged_result, signed))]

    async def scenario() -> dict[str, Any]:
        network = gossip_peer(liar)
        network.handle(PROTOCOL, lie)
        await network.start()
        try:
            await network.connect(honest.multiaddr)
            payload = announcement_payload(
                liar.peer_id, addrs=await network.addrs(), runtimes=["wasm", "python"], capacity={"cpu_cores": 8}
            )
            for seq in range(1, 40):  # announce until the honest node lists us
                await network.publish(announce.TOPIC, announce.sign(liar, {**payload, "seq": seq}))
                await asyncio.sleep(0.25)
                peers = await asyncio.to_thread(_peers, honest.api_url)
                if liar.peer_id in peers:
                    break
            status, submitted = await asyncio.to_thread(
                post, f"{honest.api_url}/v1/jobs", {"agent": agent, "inputs": {"text": data}, "redundancy": 2}
            )
            assert status == 201
            return await asyncio.to_thread(wait_final, honest.api_url, submitted["job_id"])
        finally:
            await network.stop()

    job = asyncio.run(scenario())
    assert job["state"] == "failed"
    reason = job["transitions"][-1]["reason"]
    assert "results disagree" in reason and liar.peer_id in reason and honest.peer_id in reason


def _peers(api_url: str) -> set[str]:
    from node.cluster import http_json

    return {p["peer_id"] for p in http_json(f"{api_url}/v1/peers")["peers"] if p["alive"]}
