"""Dispatch: offer a job to one node, run it there, and say what came of it, as an Outcome.

The second of the requester's three steps. Talking to this node and to a remote one go
through the same gate (the local executor gets the same typed offer and run), and every
way an attempt can end is an :class:`agents.outcome.Outcome`: an answer's own outcome, or
``node_error`` when the node was unreachable, died mid-run, or answered something
malformed. :class:`DispatchPolicy` then says, from the outcome's kind alone, whether the
job fails over, fails, or has its result.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass

from agents.manifest import Limits
from agents.outcome import Outcome, OutcomeKind
from node.errors import NetworkError, ProtocolNotSupported
from node.p2p.network import P2PNetwork
from node.scheduler import protocol
from node.scheduler.execution import JobExecution
from node.scheduler.job import JobSpec
from node.scheduler.protocol import (
    OFFER_RUN_PROTOCOL,
    PROTOCOL,
    SESSION_PROTOCOL,
    Cancel,
    CancelAnswer,
    Offer,
    OfferAnswer,
    OfferRun,
    ProtocolError,
    Run,
    RunAnswer,
)
from node.scheduler.versions import OlderPeers
from storage.cid import CID

log = logging.getLogger("mycelnet.jobs")


class Verdict(enum.Enum):
    ACCEPT = "accept"  # the node ran it: verify the result
    FAIL_OVER = "fail_over"  # node-side trouble or a refusal: try the next node
    FAIL_JOB = "fail_job"  # the agent failed or hit a limit: any node would do the same


@dataclass(frozen=True)
class DispatchPolicy:
    """Timeouts and the retry/failover rule, in one object the requester is given.

    The run timeout is the job's effective wall-clock limit plus ``run_grace`` (fetching
    inputs, staging, the receipt), so a job that raises its wall-clock limit is waited for,
    not failed over as dead; a run accepted into the executor's queue gets that limit once
    more per run ahead of it. The offer travels with the run (one stream), so a node that
    takes the stream and then says nothing is given up on after the larger of the two
    timeouts, not the offer's alone.
    """

    offer_timeout: float = 10.0
    run_grace: float = 60.0
    cancel_timeout: float = 5.0
    max_attempts: int = 16  # nodes tried for one job, all rounds together

    def run_timeout(self, limits: Limits, ahead: int = 0) -> float:
        """``ahead``: runs the executor said wait before this one; each is taken to last as long
        as this job may (the requester knows no other job's limits), so a queued run is waited for."""
        return limits.wall_seconds * (1 + ahead) + self.run_grace

    def verdict(self, outcome: Outcome) -> Verdict:
        """A ``cancelled`` answer fails over too: a client's cancel ends the job before any
        answer is read, so a run the node says was cancelled was stopped on the node's side."""
        if outcome.is_ok:
            return Verdict.ACCEPT
        if outcome.fail_over or outcome.kind is OutcomeKind.CANCELLED:
            return Verdict.FAIL_OVER
        return Verdict.FAIL_JOB


@dataclass(frozen=True)
class Attempt:
    """One node's try at a job."""

    peer: str
    outcome: Outcome
    result: CID | None = None
    receipt: bytes | None = None
    logs: bytes = b""
    busy: bool = False  # declined as busy (its cores and queue are full): ask again later, not a failure
    held_bytes: int | None = None  # input bytes the node said, accepting the offer, it holds (None: not said)
    input_bytes_fetched: int | None = None  # input bytes it measured fetching to run it (None: not said)


class Dispatcher:
    def __init__(self, network: P2PNetwork, local: JobExecution, policy: DispatchPolicy) -> None:
        self.network = network
        self.local = local
        self.policy = policy
        self.older = OlderPeers()  # peers of an older release: offer and run go apart to them
        self.no_session = OlderPeers()  # peers that serve no job session: a stream of its own per message

    async def attempt(self, job_id: str, peer: str, spec: JobSpec, limits: Limits) -> Attempt:
        try:
            offered, answer = await self._offer_and_run(job_id, peer, spec, limits)
        except NetworkError as exc:
            return Attempt(peer, Outcome.node_error(f"unreachable or died mid-run ({exc})"))
        except ProtocolError as exc:
            return Attempt(peer, Outcome.node_error(f"answered with a malformed message ({exc})"))
        return Attempt(peer, answer.outcome, answer.result, answer.receipt, answer.logs, offered.busy,
                       offered.held, answer.input_bytes_fetched)  # fmt: skip

    async def _offer_and_run(
        self, job_id: str, peer: str, spec: JobSpec, limits: Limits
    ) -> tuple[OfferAnswer, RunAnswer]:
        offer = Offer(job_id, spec)
        run = Run(job_id, spec, (self.network.peer_id,))
        if peer == self.network.peer_id:
            accepted = self.local.offer(peer, offer)
            if not accepted.accepted:
                return accepted, RunAnswer(Outcome.declined(accepted.reason))
            return accepted, await self.local.run(peer, run)
        if self.older.has(peer):
            return await self._offer_then_run(peer, offer, run, limits)
        # offer and run on one stream; the node runs it at once if a core is free, else it says
        # how many runs are ahead and the run follows on its own stream, its timeout counting them
        both = OfferRun(job_id, spec, run.providers)
        timeout = max(self.policy.offer_timeout, self.policy.run_timeout(limits))
        try:
            frames = await self._send(peer, protocol.encode(both), timeout, OFFER_RUN_PROTOCOL)
        except ProtocolNotSupported:  # an older release: the same node, asked in 2.0's messages
            log.info("job %s: %s does not speak %s; offer and run go apart", job_id, peer, OFFER_RUN_PROTOCOL)
            self.older.remember(peer)
            return await self._offer_then_run(peer, offer, run, limits)
        answer, ran = protocol.decode_offer_run(frames)
        if not answer.accepted:
            return answer, RunAnswer(Outcome.declined(answer.reason))
        if ran is not None:
            return answer, ran
        return answer, await self._run(peer, run, limits, answer.ahead)

    async def _offer_then_run(self, peer: str, offer: Offer, run: Run, limits: Limits) -> tuple[OfferAnswer, RunAnswer]:
        """The offer and then the run, each on its own stream: what a node of an older release speaks."""
        frames = await self.network.request(peer, PROTOCOL, protocol.encode(offer), timeout=self.policy.offer_timeout)
        answer = protocol.decode_answer(frames, OfferAnswer)
        if not answer.accepted:
            return answer, RunAnswer(Outcome.declined(answer.reason))
        return answer, await self._run(peer, run, limits, answer.ahead)

    async def _run(self, peer: str, run: Run, limits: Limits, ahead: int) -> RunAnswer:
        timeout = self.policy.run_timeout(limits, ahead)
        frames = await self._send(peer, protocol.encode(run), timeout, PROTOCOL)
        return protocol.decode_answer(frames, RunAnswer)

    async def _send(self, peer: str, request: bytes, timeout: float, stream_protocol: str) -> list[bytes]:
        """On the peer's job session (one stream for all of this node's messages to it) when it
        serves one, else on a stream of its own under ``stream_protocol``, as a node of the release
        before it is asked (it refused the session in libp2p's negotiation, typed; remembered)."""
        if not self.no_session.has(peer):
            try:
                return await self.network.session_request(peer, SESSION_PROTOCOL, request, timeout=timeout)
            except ProtocolNotSupported:
                log.info("%s does not speak %s; a stream per message", peer, SESSION_PROTOCOL)
                self.no_session.remember(peer)
        return await self.network.request(peer, stream_protocol, request, timeout=timeout)

    async def cancel(self, job_id: str, peers: set[str]) -> dict[str, CancelAnswer]:
        """Ask every node running the job to stop it; unreachable ones are logged and skipped."""
        message = Cancel(job_id)

        async def one(peer: str) -> CancelAnswer:
            if peer == self.network.peer_id:
                return self.local.cancel(peer, message)
            try:
                # a stream of its own: a session whose node runs its most requests reads no more until one ends
                frames = await self.network.request(
                    peer, PROTOCOL, protocol.encode(message), timeout=self.policy.cancel_timeout
                )
                return protocol.decode_answer(frames, CancelAnswer)
            except (NetworkError, ProtocolError) as exc:
                log.info("job %s: cancel to %s failed: %s", job_id, peer, exc)
                return CancelAnswer(False, f"unreachable: {exc}")

        ordered = sorted(peers)
        answers = await asyncio.gather(*(one(peer) for peer in ordered))
        return dict(zip(ordered, answers, strict=True))
