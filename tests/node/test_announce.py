from __future__ import annotations

from typing import Any

import pytest

from node import announce
from node.announce import AnnouncementError, AnnouncementValidator, PeerTable
from node.identity import NodeIdentity
from node.metrics import Metrics
from storage import dagcbor
from tests.support import announcement_payload

ALICE = NodeIdentity.from_seed(bytes(32))
MALLORY = NodeIdentity.from_seed(bytes([7]) * 32)


def payload(identity: NodeIdentity = ALICE, seq: int = 1, **changes: Any) -> dict[str, Any]:
    return announcement_payload(identity.peer_id, seq=seq, **changes)


def test_round_trip() -> None:
    assert announce.verify(announce.sign(ALICE, payload()), ALICE.peer_id)["region"] == "eu"


def test_forged_signature_is_rejected() -> None:
    forged = announce.sign(MALLORY, payload(ALICE))  # claims to be Alice, signed by Mallory
    with pytest.raises(AnnouncementError, match="bad_signature"):
        announce.verify(forged, ALICE.peer_id)


def test_tampered_payload_is_rejected() -> None:
    envelope = dagcbor.decode(announce.sign(ALICE, payload()))
    envelope["payload"]["price"] = 1
    with pytest.raises(AnnouncementError, match="bad_signature"):
        announce.verify(dagcbor.encode(envelope))


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff", dagcbor.encode([1, 2]), dagcbor.encode({"payload": {}, "sig": b""}), b"\xa0" * 10],
)
def test_malformed_is_rejected(data: bytes) -> None:
    with pytest.raises(AnnouncementError, match="malformed"):
        announce.verify(data)


def test_oversize_and_wrong_origin() -> None:
    with pytest.raises(AnnouncementError, match="oversize"):
        announce.verify(b"\x00" * (announce.MAX_SIZE + 1))
    with pytest.raises(AnnouncementError, match="wrong_origin"):
        announce.verify(announce.sign(ALICE, payload()), MALLORY.peer_id)


def test_validator_counts_and_refuses_stale_sequence_numbers() -> None:
    metrics = Metrics()
    validate = AnnouncementValidator(metrics, "self")
    assert validate(ALICE.peer_id, announce.sign(ALICE, payload(seq=5)))
    assert not validate(ALICE.peer_id, announce.sign(ALICE, payload(seq=5)))
    assert not validate(ALICE.peer_id, announce.sign(ALICE, payload(seq=4)))
    assert validate(ALICE.peer_id, announce.sign(ALICE, payload(seq=6)))
    assert not validate(ALICE.peer_id, b"junk")
    assert metrics.value("gossip_accepted_total") == 2
    assert metrics.value("gossip_rejected_total", reason="stale") == 2
    assert metrics.value("gossip_rejected_total", reason="malformed") == 1
    assert 'mycel_gossip_rejected_total{reason="stale"} 2.0' in metrics.render().decode()


def test_peer_table_liveness() -> None:
    table = PeerTable(timeout=60)
    table.update(payload())
    rows = table.snapshot(connected={ALICE.peer_id})
    assert rows[0]["alive"] and rows[0]["connected"] and rows[0]["region"] == "eu"
    table.timeout = -1
    assert table.alive() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"capacity": {"cpu_cores": "lots"}},
        {"capacity": {"cpu_cores": 0}},
        {"capacity": {"cpu_cores": True}},
        {"capacity": {"cpu_cores": 2, "gpus": -1}},
        {"capacity": {"cpu_cores": 2, "disk": 1}},
        {"capacity": {}},
        {"load": {"running_jobs": -3}},
        {"load": {"running_jobs": 1.5}},
        {"price": -1},
        {"price": "1"},
        {"seq": -1},
        {"region": "r" * 65},
        {"region": "eu\n"},
        {"addrs": ["not-a-multiaddr"]},
        {"addrs": ["/ip4/1.2.3.4/tcp/1"] * 129},
        {"runtimes": [1]},
        {"runtimes": "wasm"},
        {"api": "one"},
        {"chain_address": "0x1234"},
        {"env": "f" * 63},
        {"env": "F" * 64},
        {"env": 7},
        {"extra": "field"},
    ],
)
def test_invalid_fields_are_refused_and_counted(changes: dict[str, Any]) -> None:
    data = announce.sign(ALICE, payload(**changes))
    with pytest.raises(AnnouncementError, match="invalid"):
        announce.verify(data, ALICE.peer_id)
    metrics = Metrics()
    assert not AnnouncementValidator(metrics, "self")(ALICE.peer_id, data)
    assert metrics.value("gossip_rejected_total", reason="invalid") == 1


def test_every_field_a_node_sends_is_valid() -> None:
    full = payload(
        capacity={"cpu_cores": 16, "memory_mib": 65536, "gpus": 1},
        price=10**18,
        chain_address="0x" + "ab" * 20,
        runtimes=["wasm", "python"],
        addrs=[f"/ip4/127.0.0.1/tcp/4001/p2p/{ALICE.peer_id}"],
        env="0123456789abcdef" * 4,
    )
    assert announce.verify(announce.sign(ALICE, full), ALICE.peer_id)["price"] == 10**18


def test_the_environment_hash_reaches_placement_and_the_peer_table() -> None:
    """A node announces its agent environment's hash (optional for older nodes); placement
    and ``GET /v1/peers`` read it back."""
    from node.scheduler.candidates import Candidate, from_announcement, to_announcement

    own = Candidate("p", "eu", ("python",), 2, env="ab" * 32)
    fields = to_announcement(own)
    assert fields["env"] == "ab" * 32 and "env" not in to_announcement(Candidate("p", "eu", ("python",), 2))
    announced = payload(**{key: value for key, value in fields.items() if key != "peer"})
    assert from_announcement(ALICE.peer_id, announce.verify(announce.sign(ALICE, announced))).env == "ab" * 32
    table = PeerTable(timeout=60)
    table.update(announced)
    assert table.snapshot(set())[0]["env"] == "ab" * 32


async def test_an_announcement_is_verified_once_the_handler_takes_the_validators_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gossip validator decodes and signature-checks an announcement; the node's handler
    then uses that payload instead of verifying the same bytes again."""
    from types import SimpleNamespace

    from node.service import NodeService

    calls: list[bytes] = []
    real = announce.verify

    def counted(data: bytes, origin: str | None = None) -> dict[str, Any]:
        calls.append(data)
        return real(data, origin)

    monkeypatch.setattr(announce, "verify", counted)
    validator = AnnouncementValidator(Metrics(), "self")
    service: Any = NodeService.__new__(NodeService)
    service.announcements = validator
    service.identity = SimpleNamespace(peer_id="self")
    service.peers = PeerTable(timeout=60)
    service.job_service = None
    data = announce.sign(ALICE, payload(seq=3))
    assert validator(ALICE.peer_id, data)  # what gossip does before it delivers a message
    await service._on_announcement(ALICE.peer_id, data)
    record = service.peers.get(ALICE.peer_id)
    assert record is not None and record.announcement["seq"] == 3
    assert calls == [data] and validator.verifications == 1
    assert validator.take(ALICE.peer_id, data) is None  # handed over once


def test_a_payload_is_handed_only_to_its_origin_and_only_when_accepted() -> None:
    validator = AnnouncementValidator(Metrics(), "self")
    data = announce.sign(ALICE, payload(seq=1))
    assert validator.take(ALICE.peer_id, data) is None  # never validated
    assert validator(ALICE.peer_id, data)
    assert validator.take(MALLORY.peer_id, data) is None  # the payload is Alice's
    assert not validator(ALICE.peer_id, data)  # stale now: nothing kept for it
    for seq in range(2, announce.VERIFIED_KEPT + 10):  # never taken: the oldest are forgotten
        assert validator(ALICE.peer_id, announce.sign(ALICE, payload(seq=seq)))
    assert validator.take(ALICE.peer_id, announce.sign(ALICE, payload(seq=2))) is None
    latest = validator.take(ALICE.peer_id, announce.sign(ALICE, payload(seq=announce.VERIFIED_KEPT + 9)))
    assert latest is not None and latest["seq"] == announce.VERIFIED_KEPT + 9
