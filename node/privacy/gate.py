"""The serving gate: whether a block may be sent to a peer (libp2p) or an HTTP client.

A public block goes to anyone. A private block (:class:`~node.privacy.registry.PrivacyRegistry`)
goes only to a peer that one of its datasets' active policies names as a replica holder;
an HTTP client is never a replica holder, so no HTTP route sends private blocks, and a
locked, revoked or expired dataset is sent to nobody. Peer IDs come from the libp2p
session (Noise-authenticated); a region counts only where the policy said explicitly
that it accepts self-declared labels, and is then whatever the peer announced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from node.metrics import Metrics
from node.privacy.registry import PrivacyRegistry
from storage.cid import CID
from storage.privacy.errors import PrivacyError
from storage.privacy.policy import SignedPolicy, parse

log = logging.getLogger("mycelnet.privacy")


class ServingGate:
    def __init__(
        self, registry: PrivacyRegistry, region_of: Callable[[str], str | None], metrics: Metrics | None = None
    ) -> None:
        self.registry = registry
        self.region_of = region_of
        self.metrics = metrics
        # a second owner's say over public blocks: stream policies over retention's snapshots
        self.also: Callable[[str | None, CID], bool] | None = None

    def may_send(self, peer: str | None, cid: CID) -> bool:
        """True when ``cid`` is public, or ``peer`` holds replicas of a dataset containing it.

        A refusal is counted by reason (``not_holder``: no active policy names the peer;
        ``locked``: every dataset containing the block is locked, revoked or expired here).
        """
        datasets = self.registry.datasets_of(cid)
        if not datasets:
            if self.also is not None and not self.also(peer, cid):
                if self.metrics is not None:
                    self.metrics.inc("private_refused_total", reason="stream_regions")
                return False
            return True
        if peer is None:
            self._refused(datasets, "http")
            return False
        open_any = False
        for dataset in datasets:
            state = self.registry.state(dataset)
            if state is not None and state.policy is not None:
                open_any = True
                if state.policy.policy.may_hold(peer, self.region_of(peer)):
                    return True
        self._refused(datasets, "not_holder" if open_any else "locked")
        return False

    def _refused(self, datasets: list[CID], reason: str) -> None:
        self.registry.stats.refused(datasets, reason)
        if self.metrics is not None:
            self.metrics.inc("private_refused_total", reason=reason)

    def policy_for(self, root: CID) -> bytes | None:
        """The owner-signed policy of a private root, sent to a holder with its ``have`` answer."""
        state = self.registry.state(root)
        return None if state is None or state.policy is None else state.policy.data

    def learn_policy(self, root: CID, record: bytes) -> None:
        """Keep the policy a holder sent while this node looks for ``root``'s providers.

        Only a valid owner-signed policy for exactly ``root`` is kept (a peer cannot attach one
        for other content), under the registry's rules (newer version, same owner).
        """
        try:
            parsed = parse(record, time.time())
        except PrivacyError as exc:
            log.info("a peer sent an unusable policy for %s: %s", root, exc)
            return
        if not isinstance(parsed, SignedPolicy) or parsed.policy.dataset != root:
            log.info("a peer sent a policy for another dataset than %s", root)
            return
        state = self.registry.state(root)
        if state is not None and state.version >= parsed.policy.version:
            return  # already known (or newer)
        try:
            self.registry.apply(record)
        except PrivacyError as exc:
            log.info("policy for %s not taken: %s", root, exc)

    def before_store(self, root: CID, blocks: list[CID]) -> None:
        """Index blocks fetched for a private dataset before they are written (in a store thread)."""
        if blocks and self.registry.state(root) is not None:
            self.registry.index(root, blocks)
