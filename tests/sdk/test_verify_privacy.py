"""sdk.verify_privacy offline: a private job's receipt terms, checked against each other and the policies."""

from __future__ import annotations

import time

import nacl.signing
import pytest

from agents import receipt as receipts
from sdk import Keypair, PolicyTerms, VerificationError, verify_privacy
from storage.cid import CID
from storage.peerid import peer_id_for

KEY = nacl.signing.SigningKey.generate()
NODE = peer_id_for(bytes(KEY.verify_key))
OWNER = Keypair.generate()
DATASET = CID.for_block(b"the hospital's records")
OTHER = CID.for_block(b"another dataset")
POLICY = OWNER.policy(DATASET, PolicyTerms(holders=(NODE,), max_result_bytes=4096))


def receipt(released: str = "result", result_bytes: int = 300, cap: int = 4096, status: str = "ok",
            policies: tuple[CID, ...] = (POLICY.cid,), dataset: CID = DATASET) -> bytes:  # fmt: skip
    terms = receipts.PrivateRelease(policies, cap, result_bytes, released)
    record = receipts.Receipt("job-1", CID.for_block(b"agent"), {"data": dataset}, CID.for_block(b"update"), status,
                              "python", "3.11", receipts.Usage(0.1, 1, 0.2, 3, 4), time.time(), time.time(), NODE,
                              terms)  # fmt: skip
    return receipts.sign(record, KEY)


def test_an_honest_holders_receipt_passes_and_is_reported() -> None:
    check = verify_privacy(receipt(), "job-1", policies=[POLICY.cid], policy_records=[POLICY.data], node=NODE)
    assert check.policies == (str(POLICY.cid),) and check.released == "result" and check.result_bytes == 300
    assert check.summary == "under 1 policy: a result of 300 B released, within the 4096 B cap"
    withheld = verify_privacy(receipt("nothing", 5000, status="failed"), policy_records=[POLICY.data])
    assert withheld.released == "nothing" and "nothing released (a result of 5000 B, cap 4096 B)" in withheld.summary


@pytest.mark.parametrize(
    ("signed", "kwargs", "expected"),
    [
        (receipt(released="result", result_bytes=5000), {}, "released over its 4096 B cap"),
        (receipt(status="failed"), {}, "a result was released, but the run ended failed"),
        (receipt(policies=()), {}, "names no policy"),
        (receipt(), {"policies": [CID.for_block(b"another policy", 0x71)]}, "the receipt names policies"),
        (receipt(policies=(CID.for_block(b"x", 0x71),)), {"policy_records": [POLICY.data]}, "does not name policy"),
        (receipt(dataset=OTHER), {"policy_records": [POLICY.data]}, "not an input of the job"),
        (receipt(cap=1 << 20), {"policy_records": [POLICY.data]}, "its policies allow 4096 B"),
    ],
)
def test_inconsistent_terms_are_refused_with_the_reason(
    signed: bytes, kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(VerificationError, match=expected):
        verify_privacy(signed, **kwargs)  # type: ignore[arg-type]


def test_a_receipt_without_privacy_terms_is_refused() -> None:
    record = receipts.Receipt("job-1", CID.for_block(b"agent"), {}, None, "ok", "wasm", "1",
                              receipts.Usage(0.1, 1, 0.2, 3, 4), 1.0, 2.0, NODE)  # fmt: skip
    with pytest.raises(VerificationError, match="carries no privacy terms"):
        verify_privacy(receipts.sign(record, KEY))
