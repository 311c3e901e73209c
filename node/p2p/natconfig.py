"""The ``[p2p]`` NAT traversal settings, apart from :mod:`node.p2p.traversal` so that reading the
config does not import py-libp2p (a second of start-up for every CLI command)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TraversalSettings:
    """Relay service and its limits, and how reachability is checked (see default-config.toml)."""

    relay: bool = False  # relay for others (circuit relay v2 HOP)
    relay_max_reservations: int = 16
    relay_max_circuits: int = 16
    relay_max_circuit_bytes: int = 64 << 20
    relay_max_circuit_seconds: int = 600
    relay_reservation_ttl_seconds: int = 3600
    autonat_interval_seconds: float = 10.0
    autonat_confirmations: int = 2  # verdicts that must agree before a node counts as public or private
