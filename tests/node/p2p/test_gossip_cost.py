"""What idle gossip costs: a peer's signed record checked once, not per RPC; a small mesh."""

from __future__ import annotations

from typing import Any

from node.p2p import sender_records
from node.p2p.sender_records import REVERIFY_SECONDS, SenderRecords


class Message:
    def __init__(self, record: bytes | None) -> None:
        self.senderRecord = record or b""
        self._has = record is not None

    def HasField(self, name: str) -> bool:  # protobuf's name
        return name == "senderRecord" and self._has


class Host:
    pass


class Check:
    """py-libp2p's check as a stand-in: records starting with b"good" verify."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, msg: Any, host: Any, peer_id: Any) -> bool:
        self.calls.append(msg.senderRecord)
        return bytes(msg.senderRecord).startswith(b"good")


def test_the_same_record_from_the_same_peer_is_verified_once_until_it_is_old() -> None:
    now = [0.0]
    check = Check()
    records = SenderRecords(check, clock=lambda: now[0])
    host = Host()
    for _ in range(50):  # fifty RPCs from one peer, all with the same record
        assert records(Message(b"good-1"), host, "peer-a")
    assert check.calls == [b"good-1"]
    assert records(Message(b"good-1"), host, "peer-b")  # another peer: its own check
    assert records(Message(b"good-2"), host, "peer-a")  # a new record (addresses changed): checked
    assert records(Message(None), host, "peer-a")  # no record: nothing to check
    assert check.calls == [b"good-1", b"good-1", b"good-2"]
    now[0] = REVERIFY_SECONDS + 1  # old: checked again (and its addresses refreshed)
    assert records(Message(b"good-2"), host, "peer-a")
    assert check.calls[-1] == b"good-2" and len(check.calls) == 4
    assert records(Message(b"good-2"), Host(), "peer-a")  # another host has its own peerstore
    assert len(check.calls) == 5


def test_a_record_that_fails_is_checked_every_time() -> None:
    check = Check()
    records = SenderRecords(check)
    host = Host()
    assert records(Message(b"good"), host, "peer")
    assert not records(Message(b"bad"), host, "peer")
    assert not records(Message(b"bad"), host, "peer")
    assert records(Message(b"good"), host, "peer")  # forgotten when one failed: checked again
    assert check.calls == [b"good", b"bad", b"bad", b"good"]


def test_installed_in_both_pubsub_modules() -> None:
    import libp2p.pubsub.gossipsub as gossipsub
    import libp2p.pubsub.pubsub as pubsub

    import node.p2p.host  # noqa: F401 - installs it

    assert sender_records.check_shape() == []
    assert isinstance(pubsub.maybe_consume_signed_record, SenderRecords)
    assert gossipsub.maybe_consume_signed_record is pubsub.maybe_consume_signed_record
    assert sender_records.install() is pubsub.maybe_consume_signed_record  # idempotent


def test_the_gossip_mesh_is_kept_small() -> None:
    """Each node gets an announcement about once per mesh peer: a mesh bounded at 6 (not 12)
    keeps a cluster of up to 13 nodes from being a full mesh, where every node got every
    announcement from every peer."""
    from node.p2p.bridge import TrioBridge
    from node.p2p.host import GOSSIP_DEGREE_HIGH, HostSettings, Libp2pHost

    host = Libp2pHost(HostSettings(seed=bytes(32), listen=["/ip4/127.0.0.1/tcp/0"]), TrioBridge())
    gossipsub = host.gossipsub
    assert (gossipsub.degree_low, gossipsub.degree, gossipsub.degree_high) == (3, 4, GOSSIP_DEGREE_HIGH)
    assert GOSSIP_DEGREE_HIGH <= 6
