"""The client's signed records as they travel: commitments, payments, tampering, usability, nonces."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from eth_account import Account

from contracts.authorization import JobCommitment, JobPayment
from contracts.errors import AuthorizationError
from contracts.payment import (
    Envelope,
    NonceCounter,
    amount_for,
    chain_job_id,
    check_commitment_usable,
    commit,
    commitment_of,
    pay,
)
from storage import dagcbor

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NODE = Account.create().address


def _commitment(job: str = "a" * 32, max_amount: int = 10**15, max_price: int = 10**9) -> tuple[Envelope, bytes]:
    client = Account.create()
    return commit(job, client.key, max_amount, max_price, 31337, CONTRACT), client.key


def test_commitment_and_payment_round_trip_in_one_envelope() -> None:
    terms, key = _commitment()
    decoded = commitment_of(terms.encode(), "a" * 32)
    assert decoded == terms and decoded.signed.record.job_id == chain_job_id("a" * 32)
    paid = pay(terms, key, NODE, 12345, b"\x01" * 32, b"\x02" * 32, 7)
    again = Envelope.decode(paid.encode(), JobPayment)
    assert again == paid and again.client == terms.client
    assert set(dagcbor.decode(paid.encode())) == set(dagcbor.decode(terms.encode()))  # the same envelope
    with pytest.raises(AuthorizationError, match="expected a JobPayment"):
        Envelope.decode(terms.encode(), JobPayment)  # a commitment never passes for a payment
    with pytest.raises(AuthorizationError, match="above the job's committed maximum"):
        pay(terms, key, NODE, 10**15 + 1, b"\x01" * 32, b"\x02" * 32, 8)


def test_tampering_is_refused_with_the_reason() -> None:
    terms, key = _commitment()
    with pytest.raises(AuthorizationError, match="another job"):
        commitment_of(terms.encode(), "b" * 32)
    record = dagcbor.decode(terms.encode())
    record["message"]["maxAmount"] = str(10**18)  # a bigger cheque
    with pytest.raises(AuthorizationError, match="not signed by"):
        commitment_of(dagcbor.encode(record), "a" * 32)
    paid = dagcbor.decode(pay(terms, key, NODE, 10, b"\x01" * 32, b"\x02" * 32, 1).encode())
    for field, value in (("amount", "11"), ("receiptHash", "0x" + "03" * 32), ("nonce", 2), ("node", CONTRACT)):
        changed = {**paid, "message": {**paid["message"], field: value}}
        with pytest.raises(AuthorizationError, match="not signed by"):
            Envelope.decode(dagcbor.encode(changed), JobPayment)
    with pytest.raises(AuthorizationError, match="not valid DAG-CBOR"):
        Envelope.decode(b"\xa1\x61", JobCommitment)
    with pytest.raises(AuthorizationError, match="malformed"):
        Envelope.decode(dagcbor.encode({"type": "JobCommitment"}), JobCommitment)


def test_commitment_usability_checks() -> None:
    terms, _ = _commitment(max_price=100)
    check_commitment_usable(terms, 31337, CONTRACT, price=100)
    with pytest.raises(AuthorizationError, match="this node settles on"):
        check_commitment_usable(terms, 1, CONTRACT, price=1)
    record = terms.signed.record
    with pytest.raises(AuthorizationError, match="expires before"):
        check_commitment_usable(terms, 31337, CONTRACT, price=1, now=record.expiry)
    with pytest.raises(AuthorizationError, match="at most 100 wei per CPU-second"):
        check_commitment_usable(terms, 31337, CONTRACT, price=101)
    far = commit("c" * 32, os.urandom(32), 1, 1, 31337, CONTRACT, int(time.time()) + 8 * 86400)
    with pytest.raises(AuthorizationError, match="7 days"):
        check_commitment_usable(far, 31337, CONTRACT, price=1)


def test_amount_is_price_times_cpu_seconds_rounded_up_and_capped() -> None:
    assert amount_for(0.5, 10**9, 10**15) == 5 * 10**8
    assert amount_for(0.0000000011, 10**9, 10**15) == 2
    assert amount_for(10**9, 10**9, 10**15) == 10**15
    assert amount_for(-1.0, 10**9, 10**15) == 0


def test_nonces_never_repeat_even_after_the_counter_file_is_lost(tmp_path: Path) -> None:
    counter = NonceCounter(tmp_path / "client.key.nonce")
    first = counter.take(3)
    second = counter.take(2)
    assert first == list(range(first[0], first[0] + 3)) and second[0] == first[-1] + 1
    (tmp_path / "client.key.nonce").unlink()
    assert NonceCounter(tmp_path / "client.key.nonce").take(1)[0] >= int(time.time()) << 20
    assert (tmp_path / "client.key.nonce").stat().st_mode & 0o777 == 0o600
