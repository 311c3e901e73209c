"""The serving gate: whether a block may be sent to a peer (libp2p) or an HTTP client.

A public block goes to anyone. A private block (:class:`~node.privacy.registry.PrivacyRegistry`)
goes only to a peer that one of its datasets' active policies names as a replica holder;
an HTTP client is never a replica holder, so no HTTP route sends private blocks, and a
locked, revoked or expired dataset is sent to nobody. Peer IDs come from the libp2p
session (Noise-authenticated); a region counts only where the policy said explicitly
that it accepts self-declared labels, and is then whatever the peer announced.
"""

from __future__ import annotations

from collections.abc import Callable

from node.privacy.registry import PrivacyRegistry
from storage.cid import CID


class ServingGate:
    def __init__(self, registry: PrivacyRegistry, region_of: Callable[[str], str | None]) -> None:
        self.registry = registry
        self.region_of = region_of

    def may_send(self, peer: str | None, cid: CID) -> bool:
        """True when ``cid`` is public, or ``peer`` holds replicas of a dataset containing it."""
        datasets = self.registry.datasets_of(cid)
        if not datasets:
            return True
        if peer is None:
            return False
        for dataset in datasets:
            state = self.registry.state(dataset)
            if (
                state is not None
                and state.policy is not None
                and state.policy.policy.may_hold(peer, self.region_of(peer))
            ):
                return True
        return False

    def before_store(self, root: CID, blocks: list[CID]) -> None:
        """Index blocks fetched for a private dataset before they are written (in a store thread)."""
        if blocks and self.registry.state(root) is not None:
            self.registry.index(root, blocks)
