"""What placement knows about a node and about the job being placed.

A candidate is what a node says of itself in its signed announcement (plus what this node
measured: RTT, bandwidth, input bytes held). :func:`from_announcement` and
:func:`to_announcement` are the one mapping between the two, so the fields a node
announces are exactly the fields other nodes place by, and the executing node checks an
offer against the same candidate of itself that the requester saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from node.scheduler.reputation import NEUTRAL, Standing


@dataclass(frozen=True)
class Candidate:
    peer_id: str
    region: str
    runtimes: tuple[str, ...]
    cpu_cores: int
    running_jobs: int = 0  # jobs it holds: running, waiting in its queue, or just accepted
    gpus: int = 0
    price: int = 0  # per CPU-second, in wei
    held_bytes: int = 0  # bytes of this job's inputs the node already stores
    bandwidth: float = 50e6  # bytes/s: measured on past fetches from the peer, else this estimate
    rtt: float = 0.005  # seconds, from libp2p ping
    queue_wait: float = 0.0  # seconds until it could start
    chain_address: str = ""  # the EVM address it settles claims from (empty: no chain)
    memory_mib: int = 0  # announced memory (0: not said)
    stake: int = 0  # wei it has staked on the ledger (read for paid jobs only)
    operator: str = ""  # the operator whose signed delegation it announces (empty: its own operator)
    operator_sig: bytes = b""  # that delegation's signature (checked when the announcement arrived)
    standing: Standing = NEUTRAL  # what this node observed of it (node/scheduler/reputation.py), never announced
    queue_slots: int = 0  # jobs it accepts to wait for a free core, beyond one running per core

    @property
    def mismatches(self) -> int:
        """Its results this node recorded as disagreeing (see verify.judge)."""
        return self.standing.mismatches

    @property
    def free_slots(self) -> int:
        """Jobs it could take now, running or queued (0: full, it would decline as busy)."""
        return max(0, self.cpu_cores + self.queue_slots - self.running_jobs)

    @property
    def operator_id(self) -> str:
        """The operator it counts as towards redundancy: the one it proved, else itself."""
        return self.operator or self.peer_id

    env: str = ""  # hash of its agent environment (GET /v1/env on it lists the packages; empty: not said)


@dataclass(frozen=True)
class PlacementContext:
    runtime: str | None  # None: not known yet (an executor without the bundle checks it once opened)
    needs_gpu: bool
    regions: tuple[str, ...]  # where the job (and its data) may go; empty: anywhere
    input_bytes: int
    max_price: int | None = None
    excluded: frozenset[str] = field(default_factory=frozenset)  # nodes that already failed this job
    payable: frozenset[str] | None = None  # chain addresses the ledger binds to their nodes (None: unpaid job)
    min_stake: int = 0  # wei an executor must have staked (the paid job's commitment says)
    holders: frozenset[str] | None = None  # a federated run: only these peers hold its dataset (None: any node)
    dataset: str = ""  # that dataset's input name, for the explanation
    requires: tuple[str, ...] = ()  # the manifest's python package requirements
    environments: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # env hash -> packages known here

    def excluding(self, peers: frozenset[str] | set[str]) -> PlacementContext:
        return replace(self, excluded=frozenset(peers))


def _int(value: Any, default: int) -> int:
    """A peer's number, or the default when it sent something else (announcements are hostile)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return value


def load_of(announcement: Mapping[str, Any]) -> tuple[int, int]:
    """(running jobs, queue places) a verified announcement states, as :func:`from_announcement`
    reads them: what a job's placement re-reads each round, without building the whole candidate."""
    capacity = announcement.get("capacity", {})
    load = announcement.get("load", {})
    capacity = capacity if isinstance(capacity, Mapping) else {}
    load = load if isinstance(load, Mapping) else {}
    return _int(load.get("running_jobs"), 0), _int(capacity.get("queue"), 0)


def from_announcement(peer_id: str, announcement: Mapping[str, Any]) -> Candidate:
    """The candidate a verified announcement describes; odd values fall back to safe defaults."""
    capacity = announcement.get("capacity", {})
    load = announcement.get("load", {})
    capacity = capacity if isinstance(capacity, Mapping) else {}
    load = load if isinstance(load, Mapping) else {}
    runtimes = announcement.get("runtimes", ())
    region = announcement.get("region", "")
    address = announcement.get("chain_address", "")
    stated = announcement.get("operator")
    stated = stated if isinstance(stated, Mapping) else {}
    operator, operator_sig = stated.get("id", ""), stated.get("sig", b"")
    if not isinstance(operator, str) or not isinstance(operator_sig, bytes):
        operator, operator_sig = "", b""
    env = announcement.get("env", "")
    return Candidate(
        peer_id=peer_id,
        region=region if isinstance(region, str) else "",
        runtimes=tuple(r for r in runtimes if isinstance(r, str)) if isinstance(runtimes, (list, tuple)) else (),
        cpu_cores=max(1, _int(capacity.get("cpu_cores"), 1)),
        running_jobs=_int(load.get("running_jobs"), 0),
        gpus=_int(capacity.get("gpus"), 0),
        price=_int(announcement.get("price"), 0),
        chain_address=address if isinstance(address, str) else "",
        memory_mib=_int(capacity.get("memory_mib"), 0),
        queue_slots=_int(capacity.get("queue"), 0),
        operator=operator,
        operator_sig=operator_sig,
        env=env if isinstance(env, str) else "",
    )


def to_announcement(candidate: Candidate) -> dict[str, Any]:
    """The announcement fields that describe ``candidate`` (the rest: addresses, seq, time)."""
    fields: dict[str, Any] = {
        "peer": candidate.peer_id,
        "region": candidate.region,
        "runtimes": list(candidate.runtimes),
        "capacity": {"cpu_cores": candidate.cpu_cores, "memory_mib": candidate.memory_mib, "gpus": candidate.gpus},
        "load": {"running_jobs": candidate.running_jobs},
        "price": candidate.price,
    }
    if candidate.queue_slots:
        fields["capacity"]["queue"] = candidate.queue_slots
    if candidate.chain_address:
        fields["chain_address"] = candidate.chain_address
    if candidate.operator:
        fields["operator"] = {"id": candidate.operator, "sig": candidate.operator_sig}
    if candidate.env:
        fields["env"] = candidate.env
    return fields
