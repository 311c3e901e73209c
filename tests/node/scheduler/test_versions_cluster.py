"""Mixed job-protocol versions over real libp2p: a node serves every version ID it knows, and a
requester whose offer_run a node of the release before it refuses (multistream-select "na")
offers and runs apart on that same node, remembering it for the next job."""

from __future__ import annotations

import asyncio
from typing import Any

import nacl.signing

from agents.manifest import Limits
from agents.outcome import Outcome, OutcomeKind
from node.identity import NodeIdentity
from node.scheduler import protocol
from node.scheduler.dispatch import Dispatcher, DispatchPolicy
from node.scheduler.job import JobSpec
from node.scheduler.jobstore import new_job_id
from node.scheduler.protocol import OFFER_RUN_PROTOCOL, PROTOCOL, Offer, OfferAnswer, OfferRun
from storage import dagcbor
from storage.cid import CID
from tests.support import gossip_peer

AGENT = CID.for_block(b"an agent no node holds", 0x71)


def _identity() -> NodeIdentity:
    return NodeIdentity(nacl.signing.SigningKey.generate())


def test_a_node_serves_offer_run_under_its_version_and_the_older_messages_under_2_0(cluster: Any) -> None:
    """A requester of this release, one of the build before (offer_run under 2.0.0) and one of
    the release before that (offer alone) all get a typed answer from the same node."""
    (node,) = cluster(1, regions=["eu"])

    async def scenario() -> list[OfferAnswer]:
        network = gossip_peer(_identity())
        await network.start()
        try:
            await network.connect(node.multiaddr)
            both = protocol.encode(OfferRun(new_job_id(), JobSpec(AGENT), ()))
            answers = []
            for protocol_id in (OFFER_RUN_PROTOCOL, PROTOCOL):
                frames = await network.request(node.peer_id, protocol_id, both, timeout=30)
                answers.append(protocol.decode_offer_run(frames)[0])
            offer = protocol.encode(Offer(new_job_id(), JobSpec(AGENT)))
            frames = await network.request(node.peer_id, PROTOCOL, offer, timeout=30)
            answers.append(protocol.decode_answer(frames, OfferAnswer))
            return answers
        finally:
            await network.stop()

    answers = asyncio.run(scenario())
    assert len(answers) == 3 and all("unknown op" not in answer.reason for answer in answers), answers


def test_an_executor_of_the_release_before_offer_run_is_offered_and_run_apart(tmp_path: Any) -> None:
    """The older executor serves 2.0.0 alone and answers offer_run there as that code did; the
    requester's offer_run is refused by multistream-select before any handler sees it, then the
    same peer gets the offer and the run, and the next job goes to it as offer and run at once."""
    seen: list[str] = []

    async def previous_release(peer: str, request: bytes) -> list[bytes]:
        op = dagcbor.decode(request)["op"]  # type: ignore[index]
        seen.append(op)
        if op == OfferRun.OP:  # the old decode_request's "unknown op", answered as a declined offer
            return [
                dagcbor.encode({"op": "offer_answer", "accepted": False, "reason": f"bad request: unknown op {op!r}"})
            ]
        if op == Offer.OP:
            return [protocol.encode(OfferAnswer(True, "capacity available"))]
        return [protocol.encode(protocol.RunAnswer(Outcome.failed("exit code 7 on the older node")))]

    async def scenario() -> None:
        older, requester = gossip_peer(_identity()), gossip_peer(_identity())
        older.handle(PROTOCOL, previous_release)
        await older.start()
        await requester.start()
        try:
            older_id = await requester.connect((await older.addrs())[0])
            local: Any = None  # never asked: the job goes to the remote peer
            dispatcher = Dispatcher(requester, local, DispatchPolicy(offer_timeout=10, run_grace=10))
            for job in range(2):
                attempt = await dispatcher.attempt(new_job_id(), older_id, JobSpec(AGENT), Limits(wall_seconds=10))
                assert attempt.outcome.kind is OutcomeKind.FAILED, attempt.outcome
                assert "on the older node" in attempt.outcome.detail and attempt.peer == older_id
                assert seen == ["offer", "run"] * (job + 1)  # the handler never saw an offer_run
                assert dispatcher.older.has(older_id)
        finally:
            await requester.stop()
            await older.stop()

    asyncio.run(scenario())


def test_a_requester_sends_all_its_jobs_to_a_node_on_one_session_stream(cluster: Any) -> None:
    """Job messages to a node of this release share one long-lived stream (2.2.0), not a stream
    each: 12 attempts, concurrent and in a row, open one stream; each still gets its own answer."""
    (node,) = cluster(1, regions=["eu"])

    async def scenario() -> None:
        requester = gossip_peer(_identity())
        await requester.start()
        try:
            await requester.connect(node.multiaddr)
            local: Any = None  # never asked: every job goes to the remote node
            dispatcher = Dispatcher(requester, local, DispatchPolicy(offer_timeout=10, run_grace=10))
            before = requester.streams_opened()
            limits = Limits(wall_seconds=10)
            elsewhere = JobSpec(AGENT, regions=("mars",))  # refused by the node's own region rule
            attempts = list(await asyncio.gather(*(dispatcher.attempt(new_job_id(), node.peer_id, elsewhere, limits)
                                                   for _ in range(8))))  # fmt: skip
            for _ in range(4):
                attempts.append(await dispatcher.attempt(new_job_id(), node.peer_id, elsewhere, limits))
            for attempt in attempts:
                assert attempt.outcome.kind is OutcomeKind.DECLINED, attempt.outcome
                assert "region" in attempt.outcome.detail
            assert requester.streams_opened() - before == 1
            assert not dispatcher.no_session.has(node.peer_id)
        finally:
            await requester.stop()

    asyncio.run(scenario())
