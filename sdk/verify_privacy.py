"""Offline checks of a private job's receipt: the policies it ran under and what its holder released.

A holder signs into each receipt of a job over private data the policy CIDs it enforced, the
result cap, the result's size and whether the result left ("result") or was withheld
("nothing"). :func:`verify_privacy` checks those terms against each other and against what the
client knows (the policy CIDs, or the owner-signed policy records themselves), so a client
can tell a job that ran under the owner's terms from one that did not, without trusting the
node that relayed the receipt. An honest holder's receipt always passes; a failure names the
inconsistency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agents.receipt import Receipt
from sdk.errors import VerificationError
from sdk.verify import verify_receipt
from storage.cid import CID, DAG_CBOR
from storage.privacy.errors import PrivacyError
from storage.privacy.policy import SignedPolicy, parse


@dataclass(frozen=True)
class PrivacyCheck:
    """A private job's terms as its holder signed them, checked."""

    job_id: str
    node: str
    policies: tuple[str, ...]  # policy CIDs
    max_result_bytes: int
    result_bytes: int
    released: str  # "result" or "nothing"
    result: str | None

    @property
    def summary(self) -> str:
        terms = f"under {len(self.policies)} polic{'y' if len(self.policies) == 1 else 'ies'}"
        if self.released == "result":
            return f"{terms}: a result of {self.result_bytes} B released, within the {self.max_result_bytes} B cap"
        return f"{terms}: nothing released (a result of {self.result_bytes} B, cap {self.max_result_bytes} B)"


def verify_privacy(
    signed: bytes,
    job_id: str | None = None,
    *,
    policies: Iterable[CID | str] | None = None,
    policy_records: Iterable[bytes] = (),
    node: str | None = None,
) -> PrivacyCheck:
    """Check a receipt's privacy terms; raises VerificationError naming what disagrees.

    Always: the receipt verifies and carries privacy terms; it names at least one policy; a
    result over the cap was not released; a released result is an ok run's. With ``policies``
    (the policy CIDs the client expects, e.g. from ``client.policy(dataset)``) the receipt must
    name exactly those. With ``policy_records`` (owner-signed policies) each must verify, be one
    the receipt names, cover a dataset among the job's inputs, and the cap must be the smallest
    of their caps.
    """
    receipt = verify_receipt(signed, job_id, node=node)
    terms = receipt.privacy
    if terms is None:
        raise VerificationError(f"the receipt of job {receipt.job_id} carries no privacy terms: no policy was enforced")
    named = {str(cid) for cid in terms.policies}
    if not named:
        raise VerificationError(f"the receipt of job {receipt.job_id} names no policy")
    if any(cid.codec != DAG_CBOR for cid in terms.policies):
        raise VerificationError("a policy CID in the receipt is not a dag-cbor record's")
    if terms.result_bytes > terms.max_result_bytes and terms.released != "nothing":
        raise VerificationError(
            f"the receipt says a {terms.result_bytes} B result was released over its {terms.max_result_bytes} B cap"
        )
    if terms.released == "result" and (receipt.status != "ok" or receipt.result is None):
        raise VerificationError(f"the receipt says a result was released, but the run ended {receipt.status}")
    if policies is not None:
        expected = {str(cid) for cid in policies}
        if expected != named:
            raise VerificationError(f"the receipt names policies {sorted(named)}, not {sorted(expected)}")
    _check_records(receipt, named, list(policy_records))
    result = str(receipt.result) if receipt.result else None
    return PrivacyCheck(receipt.job_id, receipt.node, tuple(sorted(named)), terms.max_result_bytes,
                        terms.result_bytes, terms.released, result)  # fmt: skip


def _check_records(receipt: Receipt, named: set[str], records: list[bytes]) -> None:
    if not records:
        return
    assert receipt.privacy is not None
    inputs = set(receipt.inputs.values())
    caps = []
    for data in records:
        try:
            parsed = parse(data, 0)  # expiry is the holder's business at run time, not the verifier's now
        except PrivacyError as exc:
            raise VerificationError(f"a policy record does not verify: {exc}") from None
        if not isinstance(parsed, SignedPolicy):
            raise VerificationError("a policy record is a revocation, not a policy")
        if str(parsed.cid) not in named:
            raise VerificationError(f"the receipt does not name policy {parsed.cid} (of {parsed.policy.dataset})")
        if parsed.policy.dataset not in inputs:
            raise VerificationError(f"policy {parsed.cid} is for {parsed.policy.dataset}, not an input of the job")
        caps.append(parsed.policy.release.max_bytes)
    if len(caps) == len(named) and receipt.privacy.max_result_bytes != min(caps):
        raise VerificationError(
            f"the receipt's cap is {receipt.privacy.max_result_bytes} B; its policies allow {min(caps)} B"
        )
