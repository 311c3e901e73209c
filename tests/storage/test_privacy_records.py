"""Policies, revocations, grant chains and job access proofs: signatures, expiry, forgery, attenuation."""

from __future__ import annotations

from collections.abc import Callable

import nacl.signing
import pytest

from storage import dagcbor
from storage.cid import CID, DAG_CBOR, RAW
from storage.peerid import peer_id_for
from storage.privacy.access import Access, authorize
from storage.privacy.errors import PrivacyError, Refusal
from storage.privacy.grant import Grant, verify_chain
from storage.privacy.policy import Policy, Release, Revocation, SignedPolicy, parse

NOW = 1_800_000_000
DATASET = CID.for_block(b"the EU dataset", RAW)
OTHER = CID.for_block(b"another dataset", RAW)
AGENT = CID.for_block(b"approved agent", DAG_CBOR)
ROGUE_AGENT = CID.for_block(b"rogue agent", DAG_CBOR)
JOB = CID.for_block(b"job spec", DAG_CBOR)
REQUESTER = "12D3KooWRBhwfeP2Y9CDkFRBAZ1pmxUadH36TKuk3KtKm5XXP8mA"


class Key:
    def __init__(self) -> None:
        self.signing = nacl.signing.SigningKey.generate()
        self.id = peer_id_for(bytes(self.signing.verify_key))

    def sign(self, message: bytes) -> bytes:
        return bytes(self.signing.sign(message).signature)


@pytest.fixture
def owner() -> Key:
    return Key()


def policy_of(owner: Key, **changes: object) -> Policy:
    fields: dict[str, object] = {
        "dataset": DATASET, "owner": owner.id, "version": 1, "expires": NOW + 3600,
        "holders": (Key().id,), "agents": (AGENT,), "release": Release(max_bytes=1024),
    }  # fmt: skip
    fields.update(changes)
    return Policy(**fields)  # type: ignore[arg-type]


def test_signed_policy_round_trips_with_its_own_cid(owner: Key) -> None:
    signed = policy_of(owner).sign(owner.sign)
    parsed = parse(signed.data, NOW)
    assert isinstance(parsed, SignedPolicy)
    assert parsed.policy == signed.policy and parsed.cid == CID.for_block(signed.data, DAG_CBOR)


def test_altered_policy_is_refused_as_forged(owner: Key) -> None:
    signed = policy_of(owner).sign(owner.sign)
    envelope = dagcbor.decode(signed.data)
    envelope["payload"]["holders"].append(Key().id)  # a rogue node adds itself as a holder
    with pytest.raises(PrivacyError) as refused:
        parse(dagcbor.encode(envelope), NOW)
    assert refused.value.reason is Refusal.FORGED


def test_policy_signed_by_someone_else_than_its_owner_is_forged(owner: Key) -> None:
    impostor = Key()
    forged = policy_of(owner).sign(impostor.sign)  # names the owner, signed by another key
    with pytest.raises(PrivacyError) as refused:
        parse(forged.data, NOW)
    assert refused.value.reason is Refusal.FORGED


def test_expired_policy_is_refused(owner: Key) -> None:
    signed = policy_of(owner, expires=NOW - 1).sign(owner.sign)
    with pytest.raises(PrivacyError) as refused:
        parse(signed.data, NOW)
    assert refused.value.reason is Refusal.EXPIRED


def test_regions_only_with_the_explicit_self_declared_acknowledgement(owner: Key) -> None:
    with pytest.raises(PrivacyError, match="self-declared"):
        policy_of(owner, holders=(), holder_regions=("eu-edge",)).sign(owner.sign)
    labelled = policy_of(owner, holders=(), holder_regions=("eu-edge",), regions_are_self_declared=True)
    assert parse(labelled.sign(owner.sign).data, NOW).policy.may_hold(Key().id, "eu-edge")  # type: ignore[union-attr]
    assert not labelled.may_hold(Key().id, "us-east")


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(version=0),
        lambda p: p.update(holders="not a list"),
        lambda p: p.update(holders=["12D3KooNotAKey"]),
        lambda p: p.update(agents=["not a cid"]),
        lambda p: p.update(release={"max_bytes": -1, "logs": False, "to": []}),
        lambda p: p.update(extra=1),
        lambda p: p.update(expires=True),
        lambda p: p.update(holder_regions=["eu-edge"]),  # regions without the explicit "self-declared" yes
    ],
)
def test_malformed_policy_fields_are_refused(owner: Key, change: Callable[[dict[str, object]], None]) -> None:
    record = policy_of(owner).to_record()
    change(record)
    data = dagcbor.encode({"payload": record, "sig": b"\x00" * 64})
    with pytest.raises(PrivacyError) as refused:
        parse(data, NOW)
    assert refused.value.reason is Refusal.MALFORMED


def test_revocation_is_signed_by_the_owner(owner: Key) -> None:
    revocation = Revocation(DATASET, owner.id, 1, NOW).sign(owner.sign)
    assert parse(revocation.data, NOW).cid == revocation.cid
    with pytest.raises(PrivacyError) as refused:
        parse(Revocation(DATASET, owner.id, 1, NOW).sign(Key().sign).data, NOW)
    assert refused.value.reason is Refusal.FORGED


# -- grants ------------------------------------------------------------------------------
def chain_of(owner: Key, *audiences: Key, agents: tuple[CID, ...] = (), expires: int = NOW + 600) -> list[bytes]:
    links: list[bytes] = []
    issuer, proof = owner, None
    for audience in audiences:
        data = Grant(issuer.id, audience.id, DATASET, expires, agents, proof).sign(issuer.sign)
        links.append(data)
        issuer, proof = audience, CID.for_block(data, DAG_CBOR)
    return links


def test_delegated_chain_verifies(owner: Key) -> None:
    alice, bob = Key(), Key()
    last = verify_chain(chain_of(owner, alice, bob), owner.id, DATASET, bob.id, AGENT, NOW)
    assert last.audience == bob.id


def refusal(chain: list[bytes], owner: Key, client: Key, dataset: CID = DATASET) -> Refusal:
    with pytest.raises(PrivacyError) as refused:
        verify_chain(chain, owner.id, dataset, client.id, AGENT, NOW)
    return refused.value.reason


def test_expired_grant(owner: Key) -> None:
    client = Key()
    assert refusal(chain_of(owner, client, expires=NOW - 1), owner, client) is Refusal.EXPIRED


def test_forged_grant(owner: Key) -> None:
    client = Key()
    forged = Grant(owner.id, client.id, DATASET, NOW + 600).sign(client.sign)  # the client signs as the owner
    assert refusal([forged], owner, client) is Refusal.FORGED


def test_grant_for_another_dataset(owner: Key) -> None:
    client = Key()
    assert refusal(chain_of(owner, client), owner, client, OTHER) is Refusal.WRONG_DATASET


def test_broken_chain(owner: Key) -> None:
    alice, bob, mallory = Key(), Key(), Key()
    root = chain_of(owner, alice)[0]
    not_by_alice = Grant(mallory.id, bob.id, DATASET, NOW + 60, (), CID.for_block(root, DAG_CBOR)).sign(mallory.sign)
    assert refusal([root, not_by_alice], owner, bob) is Refusal.BROKEN_CHAIN
    unlinked = Grant(alice.id, bob.id, DATASET, NOW + 60).sign(alice.sign)  # names no proof
    assert refusal([root, unlinked], owner, bob) is Refusal.BROKEN_CHAIN
    assert refusal(chain_of(mallory, bob), owner, bob) is Refusal.BROKEN_CHAIN  # root not by the owner


def test_widened_expiry_and_agents(owner: Key) -> None:
    alice, bob = Key(), Key()
    root = Grant(owner.id, alice.id, DATASET, NOW + 60, (AGENT,)).sign(owner.sign)
    proof = CID.for_block(root, DAG_CBOR)
    longer = Grant(alice.id, bob.id, DATASET, NOW + 600, (AGENT,), proof).sign(alice.sign)
    assert refusal([root, longer], owner, bob) is Refusal.WIDENED
    every_agent = Grant(alice.id, bob.id, DATASET, NOW + 30, (), proof).sign(alice.sign)
    assert refusal([root, every_agent], owner, bob) is Refusal.WIDENED
    more = Grant(alice.id, bob.id, DATASET, NOW + 30, (AGENT, ROGUE_AGENT), proof).sign(alice.sign)
    assert refusal([root, more], owner, bob) is Refusal.WIDENED


def test_chain_to_someone_else(owner: Key) -> None:
    alice, bob = Key(), Key()
    assert refusal(chain_of(owner, alice), owner, bob) is Refusal.NOT_GRANTED


# -- access ------------------------------------------------------------------------------
def test_authorize_listed_client_and_grant_holder(owner: Key) -> None:
    listed, granted = Key(), Key()
    policy = policy_of(owner, clients=(listed.id,))
    assert (
        authorize(
            policy, Access(listed.id, JOB, REQUESTER, NOW + 60, {}).sign(listed.sign), JOB, AGENT, REQUESTER, NOW
        ).via
        == "policy"
    )
    proof = Access(granted.id, JOB, REQUESTER, NOW + 60, {str(DATASET): tuple(chain_of(owner, granted))}).sign(
        granted.sign
    )
    assert authorize(policy, proof, JOB, AGENT, REQUESTER, NOW).via == "grant"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unapproved_agent", Refusal.NOT_GRANTED),
        ("no_proof", Refusal.NOT_GRANTED),
        ("unknown_client", Refusal.NOT_GRANTED),
        ("other_job", Refusal.FORGED),
        ("stolen_grant", Refusal.FORGED),
        ("replayed_by_another_node", Refusal.FORGED),
        ("expired_proof", Refusal.EXPIRED),
    ],
)
def test_authorize_refusals(owner: Key, case: str, reason: Refusal) -> None:
    client, thief = Key(), Key()
    policy = policy_of(owner)
    grants = {str(DATASET): tuple(chain_of(owner, client))}
    proof: bytes | None = Access(client.id, JOB, REQUESTER, NOW + 60, grants).sign(client.sign)
    job, agent, requester = JOB, AGENT, REQUESTER
    if case == "unapproved_agent":
        agent = ROGUE_AGENT
    elif case == "no_proof":
        proof = None
    elif case == "unknown_client":
        proof = Access(thief.id, JOB, REQUESTER, NOW + 60, {}).sign(thief.sign)
    elif case == "other_job":
        job = CID.for_block(b"another spec", DAG_CBOR)
    elif case == "replayed_by_another_node":
        requester = Key().id
    elif case == "expired_proof":
        proof = Access(client.id, JOB, REQUESTER, NOW - 1, grants).sign(client.sign)
    else:  # the thief copies the client's grant and names the client, but cannot sign as it
        proof = Access(client.id, JOB, REQUESTER, NOW + 60, grants).sign(thief.sign)
    with pytest.raises(PrivacyError) as refused:
        authorize(policy, proof, job, agent, requester, NOW)
    assert refused.value.reason is reason
