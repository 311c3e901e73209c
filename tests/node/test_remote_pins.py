"""Issue 12: a remote job must not make the executing node store data for ever.

Two in-process libp2p peers: the requester holds the agent and the input; the executor
fetches them over the real block exchange, runs the job, and stores the result. What it
pinned for the requester carries a lease and goes at the first GC after it expires (the
store's clock is injected, nothing sleeps); its own pins stay; the requester's node pins
the result it fetches back permanently; and a per-peer quota refuses offers and runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import pytest

from agents.bundle import pack
from agents.executor import Executor
from agents.runtime.wasm import WasmRuntime
from node.exchange import BlockExchange
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from node.scheduler import protocol
from node.scheduler.candidates import Candidate
from node.scheduler.execution import JobExecution
from node.scheduler.job import JobSpec
from node.scheduler.jobstore import new_job_id
from node.scheduler.protocol import Offer, OfferAnswer, Run, RunAnswer
from storage.blockstore import BlockStore
from storage.files import add_path
from storage.leases import LeasePolicy
from tests.support import REPO_ROOT

TTL = 600


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Pair:
    requester: BlockExchange
    executor: BlockExchange
    execution: JobExecution
    spec: JobSpec
    clock: Clock
    own_peer: str


async def _pair(tmp_path: Path, quota: int | None) -> AsyncIterator[Pair]:
    clock = Clock()
    (tmp_path / "text.txt").write_text("one two two three three three\n" * 200)
    requester_store = BlockStore(tmp_path / "requester", sync=False)
    agent = pack(REPO_ROOT / "examples" / "wasm-wordcount", requester_store).agent_id
    text = add_path(requester_store, tmp_path / "text.txt").cid
    executor_store = BlockStore(tmp_path / "executor", sync=False, clock=clock)
    networks = [P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"]) for _ in "ab"]
    requester = BlockExchange(requester_store, networks[0], Metrics())
    executor = BlockExchange(executor_store, networks[1], Metrics())
    (tmp_path / "work").mkdir()
    runner = Executor(executor_store, {"wasm": WasmRuntime(tmp_path / "cache")}, nacl.signing.SigningKey(bytes(32)),
                      tmp_path / "work")  # fmt: skip
    own = Candidate(networks[1].peer_id, "eu", ("wasm",), 2)
    policy = LeasePolicy(ttl_seconds=TTL, quota_bytes=quota, clock=clock)
    execution = JobExecution(executor, runner, Metrics(), lambda: own, lambda cid: None, leases=policy)
    for network in networks:
        await network.start()
    try:
        await networks[0].connect((await networks[1].addrs())[0])
        yield Pair(requester, executor, execution, JobSpec(agent, {"text": text}), clock, own.peer_id)
    finally:
        for network in networks:
            await network.stop()
        for exchange in (requester, executor):
            exchange.close()
            exchange.store.close()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async for made in _pair(tmp_path, None):
        yield made


@pytest.fixture
async def tight(tmp_path: Path) -> AsyncIterator[Pair]:
    """A pair whose executor lets one peer have only 1000 bytes pinned (less than the agent)."""
    async for made in _pair(tmp_path, 1000):
        yield made


async def _offer(pair: Pair, job_id: str) -> OfferAnswer:
    requester = pair.requester.network.peer_id
    frames = await pair.execution.handle(requester, protocol.encode(Offer(job_id, pair.spec)))
    return protocol.decode_answer(frames, OfferAnswer)


async def _remote_job(pair: Pair) -> RunAnswer:
    job_id = new_job_id()
    assert (await _offer(pair, job_id)).accepted
    requester = pair.requester.network.peer_id
    frames = await pair.execution.handle(requester, protocol.encode(Run(job_id, pair.spec, (requester,))))
    return protocol.decode_answer(frames, RunAnswer)


async def test_a_remote_jobs_pins_expire_and_gc_reclaims_them(pair: Pair, tmp_path: Path) -> None:
    store = pair.executor.store
    (tmp_path / "mine.txt").write_text("the operator's own file\n")
    mine = add_path(store, tmp_path / "mine.txt").cid  # `mycel put` on the executing node

    answer = await _remote_job(pair)
    assert answer.outcome.is_ok and answer.result is not None
    expected = {pair.spec.agent, pair.spec.inputs["text"], answer.result}
    assert {pin.cid for pin in store.pins() if pin.expires is not None} == expected
    for pin in store.pins():
        if pin.cid in expected:
            assert (pin.expires, pin.owner) == (int(pair.clock.now) + TTL, pair.requester.network.peer_id)
    assert next(pin for pin in store.pins() if pin.cid == mine).expires is None

    # the requester's own node fetches the result back: a permanent pin (it asked for it)
    await pair.requester.fetch_and_pin(answer.result, [pair.executor.network.peer_id], "my result")
    assert [p.expires for p in pair.requester.store.pins() if p.cid == answer.result] == [None]

    pair.clock.now += TTL - 1
    assert store.gc().expired_pins == 0
    pair.clock.now += 1
    result = store.gc()
    assert result.expired_pins == 3 and result.removed_blocks > 3
    assert [pin.cid for pin in store.pins()] == [mine]
    for root in expected:
        assert store.missing_blocks(root) == [root]
    assert store.missing_blocks(mine) == []


async def test_a_local_jobs_result_stays_pinned(pair: Pair) -> None:
    store = pair.executor.store
    await pair.executor.fetch_and_pin(pair.spec.agent, [pair.requester.network.peer_id])  # deployed here
    await pair.executor.fetch_and_pin(pair.spec.inputs["text"], [pair.requester.network.peer_id])
    job_id = new_job_id()
    assert pair.execution.offer(pair.own_peer, Offer(job_id, pair.spec)).accepted  # the node's own job
    answer = await pair.execution.run(pair.own_peer, Run(job_id, pair.spec))
    assert answer.outcome.is_ok and answer.result is not None
    assert all(pin.expires is None for pin in store.pins()) and len(store.pins()) == 3
    pair.clock.now += 10 * TTL
    assert store.gc().removed_blocks == 0


async def test_a_peer_over_its_quota_is_refused(tight: Pair) -> None:
    store = tight.executor.store
    answer = await _remote_job(tight)  # the offer is accepted (nothing held yet), the fetch is not
    assert answer.outcome.kind.value == "declined" and "quota of 1000 bytes" in answer.outcome.detail
    assert store.pins() == []  # nothing was pinned for it; the fetched blocks go at the next gc
    assert store.gc().removed_blocks > 0

    # what it had pinned here before (the operator gave it more room) fills its quota: offers are refused
    await tight.executor.fetch_and_pin(
        tight.spec.agent,
        [tight.requester.network.peer_id],
        "job earlier",
        LeasePolicy(TTL, None, tight.clock).lease_for(tight.requester.network.peer_id),
    )
    refused = await _offer(tight, new_job_id())
    assert not refused.accepted and "quota of 1000 bytes" in refused.reason
    tight.clock.now += TTL  # once its lease has expired, it may offer again
    assert (await _offer(tight, new_job_id())).accepted


async def test_a_lease_is_renewed_only_once_half_its_term_has_run(pair: Pair) -> None:
    """Job after job over the same agent and input writes no pin (a synced write each) until the
    leases have run half their term; then the next job renews them to a full term again."""
    store = pair.executor.store
    assert (await _remote_job(pair)).outcome.is_ok
    inputs = (pair.spec.agent, pair.spec.inputs["text"])
    first = {pin.cid: pin.expires for pin in store.pins() if pin.cid in inputs}
    writes = store.pin_writes
    pair.clock.now += TTL / 2 - 1
    assert (await _remote_job(pair)).outcome.is_ok
    assert {pin.cid: pin.expires for pin in store.pins() if pin.cid in inputs} == first
    assert store.pin_writes == writes + 1  # the result's pin only, leased as it is stored
    pair.clock.now += 2
    assert (await _remote_job(pair)).outcome.is_ok
    renewed = {pin.cid: pin.expires for pin in store.pins() if pin.cid in inputs}
    assert renewed == dict.fromkeys(inputs, int(pair.clock.now) + TTL)
