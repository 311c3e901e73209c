"""The announcement's optional ``car`` field: a bulk CAR base URL, checked by schema."""

from __future__ import annotations

import pytest

from node import announce
from node.announce import AnnouncementError, PeerTable
from node.identity import NodeIdentity
from tests.support import announcement_payload

ALICE = NodeIdentity.from_seed(bytes([3]) * 32)


@pytest.mark.parametrize("url", ["http://127.0.0.1:40123", "http://node-7.example.org:80", "http://[::1]:9"])
def test_a_bulk_url_is_announced_and_kept(url: str) -> None:
    payload = announce.verify(announce.sign(ALICE, announcement_payload(ALICE.peer_id, car=url)), ALICE.peer_id)
    table = PeerTable(60)
    table.update(payload)
    assert table.car_url_of(ALICE.peer_id) == url


def test_without_the_field_a_peer_offers_no_bulk_path() -> None:
    table = PeerTable(60)
    table.update(announce.verify(announce.sign(ALICE, announcement_payload(ALICE.peer_id)), ALICE.peer_id))
    assert table.car_url_of(ALICE.peer_id) is None and table.car_url_of("unknown") is None


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:1",  # the TLS listener is named by the ticket, never by gossip
        "http://127.0.0.1:1/car/x",  # a base URL: the fetcher adds the path
        "http://user@127.0.0.1:1",
        "http://a b:1",
        "http://" + "a" * 65,
        "ftp://127.0.0.1",
        "",
        7,
        b"http://127.0.0.1:1",
    ],
)
def test_a_malformed_bulk_url_is_refused(url: object) -> None:
    data = announce.sign(ALICE, announcement_payload(ALICE.peer_id, car=url))
    with pytest.raises(AnnouncementError, match="invalid"):
        announce.verify(data, ALICE.peer_id)
