"""The executing side in process: a job id runs once, even across an executor restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nacl.signing

from agents.bundle import pack
from agents.executor import Executor
from agents.runtime.wasm import WasmRuntime
from node.metrics import Metrics
from node.scheduler import protocol
from node.scheduler.candidates import Candidate
from node.scheduler.execution import JobExecution
from node.scheduler.job import JobSpec
from node.scheduler.jobstore import JobStore, new_job_id
from node.scheduler.protocol import Cancel, Offer, OfferAnswer, Run, RunAnswer
from storage.blockstore import BlockStore
from storage.files import add_path
from storage.leases import PinLease
from tests.support import REPO_ROOT, thread_hops


def _execution(store: BlockStore, jobs: JobStore, tmp_path: Path, metrics: Metrics) -> JobExecution:
    executor = Executor(store, {"wasm": WasmRuntime(tmp_path / "cache")}, nacl.signing.SigningKey(bytes(32)),
                        tmp_path / "work")  # fmt: skip
    exchange: Any = SimpleNamespace(store=store)  # everything is local: no fetch happens
    own = Candidate(executor.node, "eu", ("wasm",), 2)
    return JobExecution(exchange, executor, metrics, lambda: own, lambda cid: None, None, jobs)


REQUESTER = "12D3KooWRequester"


async def _offer_and_run(execution: JobExecution, job_id: str, spec: JobSpec) -> RunAnswer:
    assert execution.offer(REQUESTER, Offer(job_id, spec)).accepted
    return await execution.run(REQUESTER, Run(job_id, spec))


def test_a_restarted_executor_answers_a_resent_job_from_its_first_run(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "text.txt").write_text("one two two\n")
    store = BlockStore(tmp_path / "blocks")
    agent = pack(REPO_ROOT / "examples" / "wasm-wordcount", store).agent_id
    text = add_path(store, tmp_path / "text.txt").cid
    job_spec, job_id = JobSpec(agent, {"text": text}), new_job_id()

    first_metrics = Metrics()
    jobs = JobStore(tmp_path / "jobs")
    first = asyncio.run(_offer_and_run(_execution(store, jobs, tmp_path, first_metrics), job_id, job_spec))
    assert first.outcome.is_ok and first_metrics.value("jobs_executed_total", status="ok") == 1
    jobs.close()  # the executor goes away

    again_metrics = Metrics()
    jobs = JobStore(tmp_path / "jobs")
    restarted = _execution(store, jobs, tmp_path, again_metrics)
    assert restarted.offer(REQUESTER, Offer(job_id, job_spec)).reason == "already running or done here"
    again = asyncio.run(restarted.run(REQUESTER, Run(job_id, job_spec)))
    assert again.result == first.result and again.receipt == first.receipt
    assert again_metrics.value("jobs_executed_total", status="ok") == 0  # not run a second time
    jobs.close()
    store.close()


def test_offers_for_an_agent_read_its_bundle_once(tmp_path: Path) -> None:
    """A bundle is content-addressed: after the first offer for an agent, later offers check
    the placement rules without walking its blocks or parsing its manifest on the event loop."""
    (tmp_path / "work").mkdir()
    (tmp_path / "text.txt").write_text("one\n")
    store = BlockStore(tmp_path / "blocks")
    jobs = JobStore(tmp_path / "jobs")
    try:
        agent = pack(REPO_ROOT / "examples" / "wasm-wordcount", store).agent_id
        spec = JobSpec(agent, {"text": add_path(store, tmp_path / "text.txt").cid})
        execution = _execution(store, jobs, tmp_path, Metrics())
        walks: list[object] = []
        missing = store.missing_blocks
        store.missing_blocks = lambda root: walks.append(root) or missing(root)  # type: ignore[method-assign]

        def offered() -> bool:  # withdrawn at once, so the node's two cores are never all reserved
            job_id = new_job_id()
            accepted = execution.offer(REQUESTER, Offer(job_id, spec)).accepted
            assert execution.cancel(REQUESTER, Cancel(job_id)).cancelled
            return accepted

        assert offered()
        assert walks == [agent]
        for _ in range(3):
            assert offered()
        assert walks == [agent]
        refused = execution.offer(REQUESTER, Offer(new_job_id(), JobSpec(agent, {}, needs_gpu=True)))
        assert not refused.accepted and "GPU" in refused.reason.upper()  # the kept needs still decide
    finally:
        jobs.close()
        store.close()


def _wordcount_counting_hops(store: BlockStore, jobs: JobStore, tmp_path: Path) -> tuple[Any, list[str]]:
    """Offer and run the wasm word count over an input held here, naming every thread hop."""
    (tmp_path / "text.txt").write_text("one two two\n")
    agent = pack(REPO_ROOT / "examples" / "wasm-wordcount", store).agent_id
    spec = JobSpec(agent, {"text": add_path(store, tmp_path / "text.txt").cid})
    execution = _execution(store, jobs, tmp_path, Metrics())
    with thread_hops() as hops:
        answer = asyncio.run(_offer_and_run(execution, new_job_id(), spec))
    return answer, hops


def test_a_run_over_inputs_held_here_crosses_to_threads_once_before_its_sandbox(tmp_path: Path) -> None:
    """The checks before a run (private terms, which roots are here, the requester's leases on
    them, the bundle) share one thread hop; each was its own, a visible cost at 32 jobs in flight."""
    (tmp_path / "work").mkdir()
    store = BlockStore(tmp_path / "blocks")
    jobs = JobStore(tmp_path / "jobs")
    try:
        answer, hops = _wordcount_counting_hops(store, jobs, tmp_path)
        assert answer.outcome.is_ok, answer.outcome
        before_sandbox = hops[: hops.index("run")]
        assert before_sandbox == ["_prepare"], hops
    finally:
        jobs.close()
        store.close()


def test_a_remote_requesters_result_is_stored_leased_to_it_with_no_hop_of_its_own(tmp_path: Path) -> None:
    """The result's pin is leased to the requester in the transaction that stores the result:
    it was pinned for good there and leased by a second synced commit, in a thread hop of its own."""
    (tmp_path / "work").mkdir()
    store = BlockStore(tmp_path / "blocks")
    jobs = JobStore(tmp_path / "jobs")
    try:
        answer, hops = _wordcount_counting_hops(store, jobs, tmp_path)
        assert answer.outcome.is_ok and answer.result is not None, answer.outcome
        pin = store.pin_of(answer.result)
        assert pin is not None and pin.owner == REQUESTER and pin.expires is not None
        assert hops[hops.index("run") + 1 :] == ["save_answer"], hops
    finally:
        jobs.close()
        store.close()


def test_offers_read_a_peers_pinned_bytes_again_only_once_they_may_have_changed(tmp_path: Path) -> None:
    """The quota check walks the whole pin table: it was read for every offer, a thread hop and a
    decode of every pin each; now again only after a pin write or once a counted lease expires."""
    (tmp_path / "work").mkdir()
    (tmp_path / "text.txt").write_text("one\n")
    store = BlockStore(tmp_path / "blocks")
    jobs = JobStore(tmp_path / "jobs")
    try:
        agent = pack(REPO_ROOT / "examples" / "wasm-wordcount", store).agent_id
        spec = JobSpec(agent, {"text": add_path(store, tmp_path / "text.txt").cid})
        execution = _execution(store, jobs, tmp_path, Metrics())

        async def have_size(cid: object) -> int | None:
            return None

        execution.exchange.have_size = have_size  # type: ignore[attr-defined]
        reads: list[str] = []
        holding = store.holding
        store.holding = lambda owner: reads.append(owner) or holding(owner)  # type: ignore[method-assign]

        async def offered() -> bool:
            job_id = new_job_id()
            frames = await execution.handle(REQUESTER, protocol.encode(Offer(job_id, spec)))
            accepted = protocol.decode_answer(frames, OfferAnswer).accepted
            assert execution.cancel(REQUESTER, Cancel(job_id)).cancelled
            return accepted

        async def scenario() -> None:
            for _ in range(3):
                assert await offered()
            assert reads == [REQUESTER]
            store.pin(spec.agent, "agent", lease=PinLease(REQUESTER, int(store.clock()) + 60))  # a pin write
            assert await offered() and reads == [REQUESTER] * 2

        asyncio.run(scenario())
    finally:
        jobs.close()
        store.close()
