"""While the node starts, every route that needs a part made at start-up (the job service, the
trigger service) answers one 503 ``not_ready`` with one detail, so a client can tell "retry in a
moment" from a failure; once the part exists the same routes answer."""

from __future__ import annotations

from typing import Any

from tests.node.apinode import api_node

__all__ = ["api_node"]  # the fixture, used by name

JOB_ID = "0" * 32
ROUTES = [
    ("GET", f"/v1/jobs/{JOB_ID}"),
    ("GET", f"/v1/jobs/{JOB_ID}/placement"),
    ("DELETE", f"/v1/jobs/{JOB_ID}"),
    ("GET", "/v1/evidence"),
    ("GET", "/v1/reputation"),
    ("GET", f"/v1/groups/{JOB_ID}"),
    ("GET", "/v1/triggers"),
    ("GET", "/v1/triggers/nightly"),
]


async def test_every_route_needing_a_part_made_at_start_up_answers_the_same_503(api_node: Any) -> None:
    client, node, _ = api_node
    job_service, node.job_service, node.triggers = node.job_service, None, None  # a node still starting
    answers = []
    for method, path in ROUTES:
        response = await client.request(method, path)
        assert response.status == 503, (method, path, response.status)
        answers.append(await response.json())
    assert {answer["error"] for answer in answers} == {"not_ready"}
    assert len({answer["detail"] for answer in answers}) == 1, answers
    assert "retry" in answers[0]["detail"]
    node.job_service = job_service
    assert (await client.get("/v1/evidence")).status == 200
    assert (await client.get(f"/v1/jobs/{JOB_ID}")).status == 404
