"""The running gate in process: a job over private data runs only as the owner's policy allows.

The executor checks agent, client and grant from the spec and the authenticated peer it
was sent by (never the requester's word), and lets the result leave only within the cap.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nacl.signing
import pytest

from agents import receipt as receipts
from agents.bundle import pack
from agents.executor import Executor
from agents.outcome import OutcomeKind
from agents.runtime.wasm import WasmRuntime
from node.metrics import Metrics
from node.privacy.registry import PrivacyRegistry
from node.privacy.running import WITHHELD_LOGS, RunGate
from node.scheduler.candidates import Candidate
from node.scheduler.execution import JobExecution
from node.scheduler.job import JobSpec
from node.scheduler.jobstore import new_job_id
from node.scheduler.protocol import Offer, Run, RunAnswer, spec_cid
from sdk.keys import Keypair
from storage.blockstore import BlockStore
from storage.cid import CID, DAG_CBOR
from storage.files import add_path
from storage.peerid import peer_id_for
from storage.privacy.access import Access, job_subject
from storage.privacy.grant import Grant
from storage.privacy.policy import Policy, Release
from storage.privacy.publisher import AgentSignature, parse_signature
from tests.support import REPO_ROOT, CliRunner


class Key:
    def __init__(self) -> None:
        self.signing = nacl.signing.SigningKey.generate()
        self.id = peer_id_for(bytes(self.signing.verify_key))

    def sign(self, message: bytes) -> bytes:
        return bytes(self.signing.sign(message).signature)


REQUESTER = Key()  # the node the client submits through (its peer ID is all the executor sees)


@dataclass
class Node:
    store: BlockStore
    registry: PrivacyRegistry
    execution: JobExecution
    agent: CID
    provided: list[CID]
    tmp: Path
    metrics: Metrics
    count: int = 0

    def dataset(self, owner: Key, text: str = "alpha beta beta\n", **terms: Any) -> CID:
        """A private dataset held here under ``owner``'s policy (approved agent, 1 KiB cap by default)."""
        self.count += 1
        path = self.tmp / f"data{self.count}.txt"
        path.write_text(f"{text}{self.count}\n")  # distinct content: one dataset, one owner
        root = add_path(self.store, path).cid
        self.registry.lock(root, owner.id, [cid for cid, _ in self.store.walk(root)])
        fields: dict[str, Any] = {"holders": (self.execution.executor.node,), "agents": (self.agent,),
                                  "release": Release(max_bytes=1024)}  # fmt: skip
        fields.update(terms)
        policy = Policy(root, owner.id, 1, int(time.time()) + 600, **fields)
        self.registry.apply(policy.sign(owner.sign).data)
        return root


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("private-running")
    (tmp / "work").mkdir()
    store = BlockStore(tmp / "blocks")
    registry = PrivacyRegistry(tmp / "privacy")
    agent = pack(REPO_ROOT / "examples" / "wasm-wordcount", store).agent_id
    executor = Executor(store, {"wasm": WasmRuntime(tmp / "cache")}, nacl.signing.SigningKey.generate(), tmp / "work")
    own = Candidate(executor.node, "eu", ("wasm",), 2)
    provided: list[CID] = []
    exchange: Any = SimpleNamespace(store=store)  # everything is local: nothing is fetched
    metrics = Metrics()
    gate = RunGate(registry, executor.node, lambda: "eu", metrics)
    execution = JobExecution(exchange, executor, metrics, lambda: own, provided.append, privacy=gate)
    yield Node(store, registry, execution, agent, provided, tmp, metrics)
    registry.close()
    store.close()


def spec_for(node: Node, dataset: CID, client: Key, grants: dict[str, tuple[bytes, ...]] | None = None,
             agent: CID | None = None, requester: Key = REQUESTER) -> JobSpec:  # fmt: skip
    agent = agent or node.agent
    inputs = {"text": dataset}
    proof = Access(client.id, job_subject(agent, inputs, ()), requester.id, int(time.time()) + 60, grants or {})
    return JobSpec(agent, inputs, access=proof.sign(client.sign))


def offer_and_run(node: Node, spec: JobSpec, peer: Key = REQUESTER) -> tuple[str, RunAnswer]:
    """The offer's answer, then the run (forced past a refused offer: the executor must check again)."""
    job_id = new_job_id()
    offered = node.execution.offer(peer.id, Offer(job_id, spec))
    node.execution.offers.accept(job_id, peer.id, spec_cid(spec))
    return offered.reason, asyncio.run(node.execution.run(peer.id, Run(job_id, spec)))


def grant(owner: Key, audience: Key, dataset: CID, expires: float, signer: Key | None = None) -> bytes:
    return Grant(owner.id, audience.id, dataset, int(expires)).sign((signer or owner).sign)


def test_listed_client_runs_and_only_the_result_leaves(node: Node) -> None:
    owner, client = Key(), Key()
    dataset = node.dataset(owner, clients=(client.id,))
    reason, answer = offer_and_run(node, spec_for(node, dataset, client))
    assert reason == "capacity available"
    assert answer.outcome.is_ok and answer.result is not None
    assert answer.logs == WITHHELD_LOGS  # the policy does not release logs
    assert answer.result not in node.provided  # a private job's result is not put on the DHT
    assert answer.receipt is not None
    signed = receipts.verify(answer.receipt).privacy  # the receipt names the policy and what left
    assert signed is not None and signed.released == "result" and signed.max_result_bytes == 1024
    assert signed.policies == (node.registry.state(dataset).policy.cid,)  # type: ignore[union-attr]


def test_grant_holder_runs(node: Node) -> None:
    owner, client = Key(), Key()
    dataset = node.dataset(owner)
    chain = (grant(owner, client, dataset, time.time() + 60),)
    _, answer = offer_and_run(node, spec_for(node, dataset, client, {str(dataset): chain}))
    assert answer.outcome.is_ok


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unapproved_agent", "is not approved by the policy"),
        ("unknown_client", "is not listed by the policy and shows no grant"),
        ("expired_grant", "expired:"),
        ("forged_grant", "forged:"),
        ("grant_for_another_dataset", "wrong_dataset:"),
        ("not_a_holder", "this node is not a replica holder"),
        ("replayed_by_another_requester", "names requester"),
        ("no_access_proof", "must carry an access proof"),
    ],
)
def test_refused_with_the_reason(node: Node, case: str, expected: str) -> None:
    owner, client = Key(), Key()
    dataset = node.dataset(owner)
    grants: dict[str, tuple[bytes, ...]] = {str(dataset): (grant(owner, client, dataset, time.time() + 60),)}
    spec = spec_for(node, dataset, client, grants)
    peer = REQUESTER
    if case == "unapproved_agent":
        other = node.dataset(owner, agents=(CID.for_block(b"some other agent", DAG_CBOR),))
        spec = spec_for(node, other, client, {str(other): (grant(owner, client, other, time.time() + 60),)})
    elif case == "unknown_client":
        spec = spec_for(node, dataset, client)
    elif case == "expired_grant":
        spec = spec_for(node, dataset, client, {str(dataset): (grant(owner, client, dataset, time.time() - 1),)})
    elif case == "forged_grant":  # the client signs its own grant in the owner's name
        forged = grant(owner, client, dataset, time.time() + 60, signer=client)
        spec = spec_for(node, dataset, client, {str(dataset): (forged,)})
    elif case == "grant_for_another_dataset":
        other = node.dataset(Key())
        spec = spec_for(node, dataset, client, {str(dataset): (grant(owner, client, other, time.time() + 60),)})
    elif case == "not_a_holder":
        elsewhere = node.dataset(owner, holders=(Key().id,))
        spec = spec_for(node, elsewhere, client, {str(elsewhere): (grant(owner, client, elsewhere, time.time() + 60),)})
    elif case == "replayed_by_another_requester":
        peer = Key()  # a node that saw the client's signed job sends it as its own
    else:
        spec = JobSpec(node.agent, {"text": dataset})
    reason, answer = offer_and_run(node, spec, peer)
    assert reason.startswith("this node refuses the job") and expected in reason
    assert answer.outcome.kind is OutcomeKind.DECLINED and expected in answer.outcome.detail
    assert answer.result is None and answer.receipt is None  # nothing ran


def test_result_over_the_cap_is_withheld(node: Node) -> None:
    owner, client = Key(), Key()
    dataset = node.dataset(owner, text="word " * 2000, clients=(client.id,), release=Release(max_bytes=10))
    _, answer = offer_and_run(node, spec_for(node, dataset, client))
    assert answer.outcome.kind is OutcomeKind.FAILED and "result withheld" in answer.outcome.detail
    assert answer.result is None and answer.logs == WITHHELD_LOGS
    assert answer.receipt is not None
    signed = receipts.verify(answer.receipt)
    assert signed.privacy is not None and signed.privacy.released == "nothing"
    assert signed.privacy.result_bytes > signed.privacy.max_result_bytes == 10
    assert signed.result is not None and node.registry.is_private(signed.result)  # served to no one


def published_spec(node: Node, dataset: CID, client: Key, signatures: tuple[bytes, ...]) -> JobSpec:
    inputs = {"text": dataset}
    proof = Access(client.id, job_subject(node.agent, inputs, ()), REQUESTER.id, int(time.time()) + 60, {},
                   signatures)  # fmt: skip
    return JobSpec(node.agent, inputs, access=proof.sign(client.sign))


def test_an_agent_signed_by_a_listed_publisher_runs(node: Node) -> None:
    owner, client, publisher = Key(), Key(), Key()
    dataset = node.dataset(owner, agents=(), publishers=(publisher.id,), clients=(client.id,))
    signature = AgentSignature(publisher.id, node.agent).sign(publisher.sign)
    reason, answer = offer_and_run(node, published_spec(node, dataset, client, (signature,)))
    assert reason == "capacity available" and answer.outcome.is_ok and answer.result is not None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unsigned", "not_granted: agent .* is not approved by the policy \\(not listed, and no publisher signature"),
        ("another_key", "signed by publisher .*, whom the policy does not list"),
        ("another_agent", "a publisher signature is for agent .*, not for"),
        ("tampered", "forged: the publisher signature does not verify"),
    ],
)
def test_publisher_approval_refused_with_the_reason(node: Node, case: str, expected: str) -> None:
    owner, client, publisher, stranger = Key(), Key(), Key(), Key()
    dataset = node.dataset(owner, agents=(), publishers=(publisher.id,), clients=(client.id,))
    signatures: tuple[bytes, ...] = ()
    if case == "another_key":
        signatures = (AgentSignature(stranger.id, node.agent).sign(stranger.sign),)
    elif case == "another_agent":  # the publisher's signature over an earlier release approves only that one
        signatures = (AgentSignature(publisher.id, CID.for_block(b"release 0.9", DAG_CBOR)).sign(publisher.sign),)
    elif case == "tampered":  # the publisher's key named, another key's signature
        signatures = (AgentSignature(publisher.id, node.agent).sign(stranger.sign),)
    kind = "forged" if case == "tampered" else "not_granted"
    before = node.metrics.value("private_refused_total", reason=kind)
    reason, answer = offer_and_run(node, published_spec(node, dataset, client, signatures))
    assert node.metrics.value("private_refused_total", reason=kind) == before + 2  # the offer, then the run
    assert reason.startswith("this node refuses the job") and re.search(expected, reason), reason
    assert answer.outcome.kind is OutcomeKind.DECLINED and re.search(expected, answer.outcome.detail)
    assert answer.result is None and answer.receipt is None  # nothing ran


def test_the_cli_signs_an_agent_as_its_publisher(node: Node, mycel: CliRunner, tmp_path: Path) -> None:
    signed = mycel("agent", "sign", str(node.agent), "--key", tmp_path / "publisher.key", "-o", tmp_path / "sig.json")
    assert signed.returncode == 0, signed.stderr
    written = json.loads((tmp_path / "sig.json").read_text())
    publisher = signed.stdout.strip()
    assert written["publisher"] == publisher and written["agent"] == str(node.agent)
    parsed = parse_signature(bytes.fromhex(written["signature"]))
    assert parsed == AgentSignature(publisher, node.agent)  # the same record the holder checks
    assert Keypair.load_or_create(tmp_path / "publisher.key").id == publisher  # the key stays in its file
