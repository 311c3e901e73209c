"""A stream's writer-signed policy: what it says, and every way a record is refused (types, sizes,
counts, a signature that is not the writer's, a policy naming the stream under another key)."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest

from storage import dagcbor
from storage.peerid import peer_id_for
from storage.privacy.envelope import seal
from storage.privacy.errors import PrivacyError, Refusal
from storage.streamentry import stream_id
from storage.streampolicy import DOMAIN, MAX_RECORD, MAX_REGIONS, parse_policy, sign_policy

WRITER = nacl.signing.SigningKey(b"w" * 32)
OTHER = nacl.signing.SigningKey(b"o" * 32)


def _record(**changes: Any) -> dict[str, Any]:
    writer = peer_id_for(bytes(WRITER.verify_key))
    record = {"type": "stream_policy", "stream": stream_id(writer, "feed"), "writer": writer, "name": "feed",
              "version": 1, "regions": ["eu-west"], "regions_are_self_declared": True, "time": 1}  # fmt: skip
    record.update(changes)
    return record


def _sealed(record: dict[str, Any], key: nacl.signing.SigningKey = WRITER) -> bytes:
    return seal(lambda message: bytes(key.sign(message).signature), DOMAIN, record)


def test_a_signed_policy_verifies_offline_and_says_where_entries_may_go() -> None:
    signed = sign_policy(WRITER, "feed", ["eu-west", "eu-north"], version=2, stamp=7)
    parsed = parse_policy(signed.data)
    assert parsed.cid == signed.cid and parsed.policy == signed.policy
    policy = parsed.policy
    assert policy.stream == stream_id(peer_id_for(bytes(WRITER.verify_key)), "feed") and policy.version == 2
    assert policy.regions == ("eu-west", "eu-north") and policy.regions_are_self_declared
    assert policy.allows("eu-west") and not policy.allows("us-east") and not policy.allows(None)
    anywhere = parse_policy(sign_policy(WRITER, "feed", []).data).policy
    assert anywhere.allows("us-east") and anywhere.allows(None) and not anywhere.regions_are_self_declared


def test_a_policy_signed_by_another_key_is_forged() -> None:
    with pytest.raises(PrivacyError) as refused:
        parse_policy(_sealed(_record(), OTHER))  # names the writer, signed by someone else
    assert refused.value.reason is Refusal.FORGED


def test_a_policy_from_a_non_writer_does_not_name_the_stream() -> None:
    other = peer_id_for(bytes(OTHER.verify_key))
    with pytest.raises(PrivacyError) as refused:  # the attacker's own key, the victim's stream id
        parse_policy(_sealed(_record(writer=other), OTHER))
    assert refused.value.reason is Refusal.WRONG_OWNER
    # its own stream of that name is another stream: signing one is no use against the victim's
    assert sign_policy(OTHER, "feed", ["eu"]).policy.stream != _record()["stream"]


@pytest.mark.parametrize(
    "changes",
    [
        {"regions": "eu-west"},  # not a list
        {"regions": [1]},
        {"regions": [""]},
        {"regions": ["EU-West"]},  # the privacy policies' vocabulary: lowercase labels
        {"regions": ["x" * 65]},
        {"regions": ["eu", "eu"]},  # twice
        {"regions": [f"r{i}" for i in range(MAX_REGIONS + 1)]},  # too many
        {"regions": ["eu"], "regions_are_self_declared": False},  # labels need the writer's explicit yes
        {"regions_are_self_declared": "yes"},
        {"version": 0},
        {"version": "1"},
        {"version": True},
        {"time": -1},
        {"name": "Bad Name"},
        {"name": 5},
        {"stream": 5},
        {"writer": "not-a-key"},
        {"type": "policy"},
        {"extra": 1},  # unknown field
    ],
)
def test_malformed_policies_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(PrivacyError) as refused:
        parse_policy(_sealed(_record(**changes)))
    assert refused.value.reason in (Refusal.MALFORMED, Refusal.WRONG_OWNER)


def test_a_missing_field_oversize_record_or_bad_envelope_is_malformed() -> None:
    record = _record()
    del record["time"]
    for data in (
        _sealed(record),
        b"x" * (MAX_RECORD + 1),
        b"\xff\x00",
        dagcbor.encode({"payload": _record()}),
        dagcbor.encode([1, 2]),
    ):
        with pytest.raises(PrivacyError) as refused:
            parse_policy(data)
        assert refused.value.reason is Refusal.MALFORMED
    with pytest.raises(PrivacyError):
        parse_policy("text")  # type: ignore[arg-type]


def test_the_sdk_side_refuses_a_bad_region_before_signing() -> None:
    with pytest.raises(PrivacyError):
        sign_policy(WRITER, "feed", ["Not A Region"])
