"""What placement knows about a node and about the job being placed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    peer_id: str
    region: str
    runtimes: tuple[str, ...]
    cpu_cores: int
    running_jobs: int = 0
    gpus: int = 0
    price: int = 0  # per CPU-second, in wei
    held_bytes: int = 0  # bytes of this job's inputs the node already stores
    bandwidth: float = 50e6  # bytes/s: measured on past fetches from the peer, else this estimate
    rtt: float = 0.005  # seconds, from libp2p ping
    queue_wait: float = 0.0  # seconds until it could start
    chain_address: str = ""  # the EVM address it settles claims from (empty: no chain)
    stake: int = 0  # wei it has staked on the ledger (read for paid jobs only)


@dataclass(frozen=True)
class PlacementContext:
    runtime: str
    needs_gpu: bool
    regions: tuple[str, ...]  # where the job (and its data) may go; empty: anywhere
    input_bytes: int
    max_price: int | None = None
    excluded: frozenset[str] = field(default_factory=frozenset)  # nodes that already failed this job
    payable: frozenset[str] | None = None  # node addresses the job's payment authorises (None: unpaid job)
    min_stake: int = 0  # wei an executor must have staked (the paid job's commitment says)
