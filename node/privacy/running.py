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
from node.metrics import Metrics
from node.privacy.registry import PrivacyRegistry
from storage.cid import CID
from storage.privacy.access import authorize, job_subject
from storage.privacy.errors import PrivacyError
from storage.privacy.policy import SignedPolicy

WITHHELD_LOGS = b"[logs withheld: the policy of a private input does not release them]\n"


class PrivateJobRefused(Exception):
    """Why a job over private data does not run here (the text goes into the decline).

    ``reason`` is the typed part (a :class:`~storage.privacy.errors.Refusal` value, or
    ``not_holder``, ``locked``, ``revoked``, ``expired``): what metrics and dashboards count by.
    """

    def __init__(self, reason: str, detail: str, dataset: CID | None = None) -> None:
        super().__init__(detail)
        self.reason, self.dataset = reason, dataset


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
    def __init__(
        self, registry: PrivacyRegistry, own_peer: str, own_region: Callable[[], str], metrics: Metrics | None = None
    ) -> None:
        self.registry = registry
        self.own_peer = own_peer
        self.own_region = own_region
        self.metrics = metrics

    def check(
        self,
        requester: str,
        agent: CID,
        inputs: Mapping[str, CID],
        args: Sequence[str],
        access: bytes | None,
        now: float | None = None,
    ) -> PrivateRun | None:
        """None for a job with no private input; the run's terms when it may run; raises PrivateJobRefused
        (counted by reason)."""
        try:
            return self._check(requester, agent, inputs, args, access, now)
        except PrivateJobRefused as exc:
            if self.metrics is not None:
                self.metrics.inc("private_refused_total", reason=exc.reason)
            if exc.dataset is not None:
                self.registry.stats.refused([exc.dataset], exc.reason)
            raise

    def _check(
        self,
        requester: str,
        agent: CID,
        inputs: Mapping[str, CID],
        args: Sequence[str],
        access: bytes | None,
        now: float | None,
    ) -> PrivateRun | None:
        """The checks of :meth:`check`.

        A job that carries an access proof says it runs over private data; a node that holds none
        of its inputs privately is not one of their holders (whose have answers deny the data to
        everyone else), so it declines at once instead of trying to fetch what nobody will send it.
        """
        datasets = list(dict.fromkeys(d for cid in inputs.values() for d in self.registry.datasets_of(cid)))
        if not datasets:
            if access is not None:
                raise PrivateJobRefused(
                    "not_holder",
                    "this node holds none of the job's inputs as private data (the job carries an access proof: "
                    "it runs only at its private datasets' holders)",
                )
            return None
        when = time.time() if now is None else now
        subject = job_subject(agent, dict(inputs), args)
        policies: list[SignedPolicy] = []
        client = ""
        for dataset in datasets:
            state = self.registry.state(dataset, when)
            if state is None or state.policy is None:
                kind = state.state if state else "not_holder"
                raise PrivateJobRefused(
                    kind, f"private dataset {dataset} is {state.state if state else 'unknown'} here"
                )
            policy = state.policy.policy
            if not policy.may_hold(self.own_peer, self.own_region()):
                raise PrivateJobRefused(
                    "not_holder", f"this node is not a replica holder of private dataset {dataset}", dataset
                )
            try:
                authorized = authorize(policy, access, subject, agent, requester, when)
            except PrivacyError as exc:
                raise PrivateJobRefused(
                    exc.reason.value, f"refused by the policy of {dataset}: {exc}", dataset
                ) from None
            client = authorized.client
            if authorized.via == "grant":
                self.registry.stats.granted(dataset, client)
            policies.append(state.policy)
        return PrivateRun(tuple(policies), client)
