"""Payments as clients attach them: per-node authorisations, tampering, usability, nonces."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from contracts.errors import AuthorizationError
from contracts.payment import NonceCounter, Payment, authorize, chain_job_id
from storage import dagcbor

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NODES = [Account.create().address for _ in range(3)]


def _payment(job: str = "a" * 32) -> tuple[Payment, str]:
    client = Account.create()
    return authorize(job, client.key, NODES, 10**15, 31337, CONTRACT, [1, 2, 3]), client.address


def test_round_trip_and_each_node_sees_only_its_own() -> None:
    payment, client = _payment()
    decoded = Payment.decode(payment.encode(), "a" * 32)
    assert decoded == payment and decoded.client == client
    assert all(s.authorization.job_id == chain_job_id("a" * 32) for s in decoded.authorizations.values())
    mine = decoded.for_node(NODES[1])
    assert mine is not None and list(mine.authorizations) == [NODES[1]]
    assert decoded.for_node(Account.create().address) is None


def test_tampering_is_refused_with_the_reason() -> None:
    payment, _ = _payment()
    record = dagcbor.decode(payment.encode())
    record["auths"][0]["nonce"] = 99  # a node raising its own nonce to reuse an authorisation
    with pytest.raises(AuthorizationError, match="not signed by"):
        Payment.decode(dagcbor.encode(record), "a" * 32)
    with pytest.raises(AuthorizationError, match="not signed by"):
        Payment.decode(payment.encode(), "b" * 32)  # replayed for another job
    record = dagcbor.decode(payment.encode())
    record["max_amount"] = str(10**18)  # a bigger cheque
    with pytest.raises(AuthorizationError, match="not signed by"):
        Payment.decode(dagcbor.encode(record), "a" * 32)
    with pytest.raises(AuthorizationError, match="not valid DAG-CBOR"):
        Payment.decode(b"\xa1\x61", "a" * 32)
    with pytest.raises(AuthorizationError, match="malformed"):
        Payment.decode(dagcbor.encode({"client": "nope"}), "a" * 32)


def test_usability_checks() -> None:
    payment, _ = _payment()
    payment.check_usable(31337, CONTRACT)
    with pytest.raises(AuthorizationError, match="this node settles on"):
        payment.check_usable(1, CONTRACT)
    with pytest.raises(AuthorizationError, match="expires before"):
        payment.check_usable(31337, CONTRACT, now=payment.expiry)
    client = Account.create()
    far = authorize("c" * 32, client.key, NODES, 1, 31337, CONTRACT, [1, 2, 3], int(time.time()) + 8 * 86400)
    with pytest.raises(AuthorizationError, match="7 days"):
        far.check_usable(31337, CONTRACT)


def test_nonces_never_repeat_even_after_the_counter_file_is_lost(tmp_path: Path) -> None:
    counter = NonceCounter(tmp_path / "client.key.nonce")
    first = counter.take(3)
    second = counter.take(2)
    assert first == list(range(first[0], first[0] + 3)) and second[0] == first[-1] + 1
    (tmp_path / "client.key.nonce").unlink()
    assert NonceCounter(tmp_path / "client.key.nonce").take(1)[0] >= int(time.time()) << 20
    assert (tmp_path / "client.key.nonce").stat().st_mode & 0o777 == 0o600
