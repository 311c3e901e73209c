"""A job over a private dataset, end to end over real node processes and libp2p.

The client submits through a node that does not hold the data; the policy names one
holder, which checks the client's grant itself, runs the approved agent and releases the
result (within the cap) to the requesting node only; an unknown client's job fails with
the policy's reason, and nobody learns the agent's logs.
"""

from __future__ import annotations

from typing import Any

import pytest

from sdk import JobFailedError, Keypair, MissingInputError, PolicyTerms, SyncClient
from tests.support import REPO_ROOT


def test_private_job_runs_only_on_the_holder_for_a_granted_client(cluster: Any) -> None:
    holder, requester = cluster(2, regions=["eu", "us"], timeout=20)
    owner, client_key, stranger = Keypair.generate(), Keypair.generate(), Keypair.generate()
    with SyncClient(holder.api_url) as at_holder:
        agent = at_holder.deploy(REPO_ROOT / "examples" / "wasm-wordcount")
        terms = PolicyTerms(holders=(holder.peer_id,), agents=(agent,), max_result_bytes=4096)
        dataset = at_holder.put(b"eu patients: one two two three three three\n", terms, owner)
    grant = owner.grant(client_key.id, dataset, ttl_seconds=600, agents=[agent])

    with SyncClient(requester.api_url) as client:
        client.deploy(REPO_ROOT / "examples" / "wasm-wordcount")  # the requester has the agent, not the data
        job = client.run(agent, {"text": dataset}, client_key=client_key, grants={str(dataset): grant})
        assert job.node == holder.peer_id and job.result_cid is not None
        assert b"withheld" in job.logs()[holder.peer_id].encode()
        with pytest.raises(JobFailedError, match="is not listed by the policy and shows no grant"):
            client.run(agent, {"text": dataset}, client_key=stranger)
        with pytest.raises(MissingInputError, match="private dataset has no provider records"):
            client.run(agent, {"text": dataset})  # no proof at all: nobody provides it (the gate: test_private_running)
