"""The running gate: a job over private data runs only where, by whom and with what the policy allows.

The executor calls :meth:`RunGate.check` on the offer and again before it runs, from the
spec it was sent and the peer that sent it (libp2p-authenticated), never from anything
the requester claims: this node must be a replica holder under every private input's
active policy, the agent must be one the policy approves, and the client's access proof
(signed by the client's key, for exactly this agent, inputs and arguments, naming this
requester) must show a client the policy lists or a valid grant chain from the owner.

The executor then lets the result DAG (never the input) leave only up to the smallest
size cap of the policies involved (:meth:`PrivateRun.terms`), and signs the policies and
what it released into the receipt; a larger result is withheld (its blocks are indexed
as private, so no one can fetch them) and the job fails with the reason. The agent's
logs leave only where every policy allows logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agents.receipt import PrivateRelease
from node.privacy.registry import PrivacyRegistry
from storage.cid import CID
from storage.privacy.access import authorize, job_subject
from storage.privacy.errors import PrivacyError
from storage.privacy.policy import SignedPolicy

WITHHELD_LOGS = b"[logs withheld: the policy of a private input does not release them]\n"


class PrivateJobRefused(Exception):
    """Why a job over private data does not run here (the text goes into the decline)."""


@dataclass(frozen=True)
class PrivateRun:
    policies: tuple[SignedPolicy, ...]
    client: str

    @property
    def max_bytes(self) -> int:
        return min(signed.policy.release.max_bytes for signed in self.policies)

    @property
    def logs(self) -> bool:
        return all(signed.policy.release.logs for signed in self.policies)

    def terms(self) -> PrivateRelease:
        """What the executor enforces and signs into the receipt: the policies and the result cap."""
        return PrivateRelease(tuple(signed.cid for signed in self.policies), self.max_bytes)


class RunGate:
    def __init__(self, registry: PrivacyRegistry, own_peer: str, own_region: Callable[[], str]) -> None:
        self.registry = registry
        self.own_peer = own_peer
        self.own_region = own_region

    def check(
        self,
        requester: str,
        agent: CID,
        inputs: Mapping[str, CID],
        args: Sequence[str],
        access: bytes | None,
        now: float | None = None,
    ) -> PrivateRun | None:
        """None for a job with no private input; the run's terms when it may run; raises PrivateJobRefused."""
        datasets = list(dict.fromkeys(d for cid in inputs.values() for d in self.registry.datasets_of(cid)))
        if not datasets:
            return None
        when = time.time() if now is None else now
        subject = job_subject(agent, dict(inputs), args)
        policies: list[SignedPolicy] = []
        client = ""
        for dataset in datasets:
            state = self.registry.state(dataset, when)
            if state is None or state.policy is None:
                raise PrivateJobRefused(f"private dataset {dataset} is {state.state if state else 'unknown'} here")
            policy = state.policy.policy
            if not policy.may_hold(self.own_peer, self.own_region()):
                raise PrivateJobRefused(f"this node is not a replica holder of private dataset {dataset}")
            try:
                client = authorize(policy, access, subject, agent, requester, when).client
            except PrivacyError as exc:
                raise PrivateJobRefused(f"refused by the policy of {dataset}: {exc}") from None
            policies.append(state.policy)
        return PrivateRun(tuple(policies), client)
