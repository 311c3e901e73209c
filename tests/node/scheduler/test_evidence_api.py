"""The evidence listing and the spot-check settings of POST /v1/jobs, on an in-process API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.api import jobs as job_routes
from node.api.errors import SERVICE_KEY, error_middleware
from node.scheduler.job import Checks, JobRecord, JobSpec
from node.scheduler.jobstore import JobStore
from node.scheduler.reputation import Event
from node.scheduler.verify import Evidence, Judgement, Referee, Verified
from storage.cid import CID

AGENT = CID.for_block(b"agent", 0x55)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], JobStore, list[Any]]]:
    store = JobStore(tmp_path / "jobs")
    submitted: list[Any] = []

    def submit(spec: JobSpec, job_id: str | None, checks: Checks, queue_timeout: float | None = None) -> JobRecord:
        submitted.append((spec, job_id, checks))
        return JobRecord(job_id or "f" * 32, spec)

    async def persisted() -> None:
        return None

    service = SimpleNamespace(jobs=store, job_service=SimpleNamespace(submit=submit, persisted=persisted))
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE_KEY] = service  # type: ignore[misc]
    app.add_routes(job_routes.routes())
    async with TestClient(TestServer(app)) as client:
        yield client, store, submitted
    store.close()


def _evidence() -> Evidence:
    results = {peer: Verified(peer, CID.for_block(peer.encode(), 0x55), b"signed by " + peer.encode(),
                              CID.for_block(b"r", 0x71)) for peer in ("honest", "rogue")}  # fmt: skip
    judgement = Judgement(results["honest"].result, ("honest",), ("rogue",), Referee.TRUSTED, "results disagree")
    return Evidence.of("e" * 32, AGENT, results, judgement)


async def test_evidence_lists_both_receipts_and_filters_by_blamed_peer(api: Any) -> None:
    client, store, _ = api
    evidence_id = store.save_evidence(_evidence())
    assert [(seen.peer, seen.event) for seen in store.reputation()["rogue"]] == [("rogue", Event.DISAGREED)]
    assert set(store.reputation()) == {"rogue"}  # the honest node is not blamed
    answer = await (await client.get("/v1/evidence")).json()
    (record,) = answer["evidence"]
    assert record["evidence_id"] == evidence_id and record["blamed"] == ["rogue"] and record["referee"] == "trusted"
    assert bytes.fromhex(record["receipts"]["rogue"]) == b"signed by rogue"
    assert (await (await client.get("/v1/evidence?peer=honest")).json())["evidence"] == []
    for query in ("limit=0", "limit=x", "limit=501"):
        response = await client.get(f"/v1/evidence?{query}")
        assert response.status == 400 and (await response.json())["error"] == "bad_query"


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"spot_check": 0.5}, "spot_check needs trusted"),
        ({"spot_check": 2, "trusted": ["12D3KooW"]}, "probability from 0 to 1"),
        ({"spot_check": "often", "trusted": ["12D3KooW"]}, "probability from 0 to 1"),
        ({"trusted": "12D3KooW"}, "list of at most 16 peer IDs"),
    ],
)
async def test_unusable_spot_check_settings_are_refused(api: Any, extra: dict[str, Any], says: str) -> None:
    client, _, submitted = api
    response = await client.post("/v1/jobs", json={"agent": str(AGENT), **extra})
    body = await response.json()
    assert response.status == 400 and body["error"] == "bad_job" and says in body["detail"], body
    assert submitted == []


async def test_spot_check_settings_stay_with_the_requester(api: Any) -> None:
    client, _, submitted = api
    response = await client.post("/v1/jobs", json={"agent": str(AGENT), "spot_check": 1, "trusted": ["12D3KooW"]})
    assert response.status == 201
    ((spec, _, checks),) = submitted
    assert "spot_check" not in spec.to_record() and checks.drawn and checks.trusted == ("12D3KooW",)
