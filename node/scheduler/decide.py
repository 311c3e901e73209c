"""Decide: what the job needs, which nodes could run it, and how they rank.

This is the first of the requester's three steps (decide, :mod:`dispatch`, :mod:`verify`).
It gathers candidates from the peer view (:mod:`node.scheduler.peerview`: signed
announcements, measured RTT and bandwidth, content summaries), the input bytes each holds,
and builds the placement context; :func:`node.scheduler.placement.decide` then runs
the rules and the score. Nothing here talks to an executor about the job itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from agents.bundle import open_bundle
from agents.environment import agent_environment
from agents.manifest import Limits, Manifest
from contracts.authorization import JobCommitment
from contracts.payment import Envelope
from node.announce import PeerTable
from node.exchange import BlockExchange
from node.p2p.network import P2PNetwork
from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.job import JobSpec
from node.scheduler.limits import effective_limits
from node.scheduler.peerview import MAX_CONFIRM, PeerView
from storage.cid import CID

log = logging.getLogger("mycelnet.jobs")


@dataclass(frozen=True)
class Plan:
    """Everything placement needs for one job, gathered once per attempt round."""

    manifest: Manifest
    limits: Limits  # manifest + the job's overrides: an upper bound of what any executor will run
    context: PlacementContext
    candidates: list[Candidate]


class Decider:
    def __init__(
        self,
        network: P2PNetwork,
        exchange: BlockExchange,
        peers: PeerTable,
        own: Callable[[], Candidate],
        bound: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.network = network
        self.exchange = exchange
        self.peers = peers
        self.own = own
        self.bound = bound  # (address, peer ID) -> is the address registered to that peer on the ledger?
        self.stake_of: Callable[[str], int] | None = None  # address -> its stake on the ledger
        self.view = PeerView(peers, network.ping, exchange.bandwidth)

    async def manifest(self, spec: JobSpec) -> Manifest:
        """The agent's manifest, its bundle fetched first when any block of it is not here.

        The check (a walk) and the read share one thread hop when the bundle is here, as it
        is for every job after an agent's first: each was a hop of its own, per job."""
        store = self.exchange.store
        manifest = await asyncio.to_thread(self._local_manifest, spec.agent)
        if manifest is None:
            await self.exchange.fetch(spec.agent)
            manifest = (await asyncio.to_thread(open_bundle, store, spec.agent)).manifest
        return manifest

    def _local_manifest(self, agent: CID) -> Manifest | None:
        """The manifest of a bundle held here whole; None when a block of it is missing (blocking)."""
        store = self.exchange.store
        return None if store.missing_blocks(agent) else open_bundle(store, agent).manifest

    async def plan(self, spec: JobSpec, payment: Envelope | None, at_holders_of: str = "") -> Plan:
        """``at_holders_of`` names an input (a federated run's dataset): only its holders may run it."""
        manifest = await self.manifest(spec)
        holders: dict[CID, frozenset[str]] = {}
        exact = spec.inputs[at_holders_of] if at_holders_of else None
        candidates, input_bytes = await self.candidates(spec, holders, exact)
        if payment is not None and self.bound is not None:
            candidates = await self._only_bound_addresses(candidates)
        context = PlacementContext(
            manifest.runtime,
            spec.needs_gpu or manifest.needs.gpu,
            tuple(spec.regions) or tuple(manifest.needs.regions),
            input_bytes,
            spec.max_price,
            payable=frozenset(c.chain_address for c in candidates if c.chain_address) if payment else None,
            min_stake=_min_stake(payment),
            requires=manifest.node_requires,  # what its own wheels do not provide
            environments=await _known_environments(manifest),
        )
        if at_holders_of:
            context = replace(context, holders=holders[spec.inputs[at_holders_of]], dataset=at_holders_of)
        return Plan(manifest, effective_limits(manifest.limits, spec.limits), context, candidates)

    async def candidates(
        self,
        spec: JobSpec,
        found: dict[CID, frozenset[str]] | None = None,
        exact: CID | None = None,
        search: bool = False,
    ) -> tuple[list[Candidate], int]:
        """Candidates from the peer view (and this node), with the input bytes each holds.

        Nothing is asked per peer: the view's announcements, RTTs and content summaries
        rank them, and the offer confirms live capacity. An input is looked up on the
        network only where the view does not place it: a Bloom hit is confirmed with that
        peer alone, and an input no summary lists (nor this node holds) goes to the DHT and
        the connected peers, as before. ``exact`` (a federated run's dataset) is always
        looked up that way, since the holder rule refuses by it. ``found`` is filled with
        the peers holding each whole input. ``search`` also asks the network for every input
        (failover, when no remaining candidate holds the input: a summary may lag the content);
        so does a redundant job whose input the view places on fewer nodes than it needs."""
        own = self.own()
        candidates = self.view.candidates(own)
        held: dict[str, int] = dict.fromkeys(candidates, 0)
        total = 0
        fetch_from: set[str] = set()  # peers holding an input this node lacks: where it would fetch
        for cid in spec.inputs.values():
            own_size = await self.exchange.have_size(cid)  # no walk on the loop
            if cid == exact:
                holders = await self.exchange.holders(cid)
            elif search:
                holders = {**await self.exchange.holders(cid), **self.view.placed(cid, list(candidates))[0]}
            else:
                holders = await self._holders(cid, [p for p in candidates if p != own.peer_id], own_size is not None)
            if own_size is not None:
                holders[own.peer_id] = own_size
            else:
                fetch_from.update(holders)
            if not search and cid != exact and len(holders) < spec.redundancy:
                # too few placed holders for the job's executors: a peer's summary may lag its content
                holders = {**await self.exchange.holders(cid), **holders}
            total += max(holders.values(), default=0)
            if found is not None:
                found[cid] = frozenset(holders)
            for peer, held_size in holders.items():
                if peer in held:
                    held[peer] += held_size
        candidates[own.peer_id] = self._own_distance(candidates[own.peer_id], fetch_from)
        return [replace(c, held_bytes=held[c.peer_id]) for c in candidates.values()], total

    def _own_distance(self, own: Candidate, fetch_from: set[str]) -> Candidate:
        """This node as a candidate, with the round trip its own fetch would cost: the RTT to the
        nearest measured holder of what it lacks. A peer's RTT stands for the peer's distance from
        the data; this node's is not zero just because it is here. Without this, a requester
        holding a few bytes of a job's inputs (say a query file that also ships in the agent's
        bundle) outranked the peer holding the rest whenever the view lagged on one small input
        and the peer's measured RTT was above the local default."""
        distances = [rtt for peer in fetch_from if (rtt := self.view.rtt(peer)) is not None]
        return replace(own, rtt=max(own.rtt, min(distances))) if distances else own

    async def _holders(self, cid: CID, peers: list[str], held_here: bool) -> dict[str, int]:
        """Holders of ``cid`` the view places (listed, or a confirmed Bloom hit); the network is
        searched only when neither the view nor this node places it."""
        listed, maybe = self.view.placed(cid, peers)
        asked = maybe[:MAX_CONFIRM]
        answers = await asyncio.gather(*(self.exchange.probe(peer, cid) for peer in asked))
        listed.update({peer: size for peer, size in zip(asked, answers, strict=True) if size is not None})
        if listed or held_here:
            return listed
        return await self.exchange.holders(cid)

    async def _only_bound_addresses(self, candidates: list[Candidate]) -> list[Candidate]:
        """A paid job trusts an announced chain address only if the ledger binds it to that peer
        (an Ed25519 signature by the peer's key, checked here); otherwise the node counts as
        settling on no chain and the payment rule refuses it."""
        assert self.bound is not None
        bound = self.bound
        checks = await asyncio.gather(
            *(asyncio.to_thread(bound, c.chain_address, c.peer_id) for c in candidates if c.chain_address)
        )
        verdicts = iter(checks)
        kept = []
        for candidate in candidates:
            if candidate.chain_address and not next(verdicts):
                log.warning("%s announces %s, which the ledger does not bind to it", candidate.peer_id,
                            candidate.chain_address)  # fmt: skip
                candidate = replace(candidate, chain_address="")
            kept.append(candidate)
        if self.stake_of is not None:  # for the stake rule and the placement explanation
            stake_of = self.stake_of
            stakes = await asyncio.gather(
                *(asyncio.to_thread(stake_of, c.chain_address) for c in kept if c.chain_address)
            )
            found = iter(stakes)
            kept = [replace(c, stake=next(found)) if c.chain_address else c for c in kept]
        return kept


async def _known_environments(manifest: Manifest) -> dict[str, dict[str, str]]:
    """The package lists placement can check ``requires`` against: this node's own (by hash)."""
    if not manifest.requires:
        return {}
    env = await asyncio.to_thread(agent_environment)  # read once per process, never on the loop
    return {env.hash: env.packages}


def _min_stake(payment: Envelope | None) -> int:
    """The stake the paid job's commitment asks of its executors (0: none, or an unpaid job)."""
    record = payment.signed.record if payment is not None else None
    return record.min_stake if isinstance(record, JobCommitment) else 0
