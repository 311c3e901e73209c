"""Group (federated) jobs in process: a run per dataset at its holder, failover to a replica,
a failed group naming the dataset, the aggregator over exactly the runs' results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from node.scheduler import protocol
from node.scheduler.group import GroupSpec, GroupState, group_json, group_placement
from node.scheduler.job import JobError, JobState
from node.scheduler.protocol import Offer, OfferAnswer, OfferRun, RunAnswer
from storage.cid import CID
from tests.node.scheduler.harness import Cluster, build

AGENT = CID.for_block(b"agent", 0x71)


def _run(cluster: Cluster, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        asyncio.run(scenario())
    finally:
        cluster.close()


def _datasets(cluster: Cluster, holders: dict[str, list[int]]) -> dict[str, CID]:
    """A dataset per name in the shared store, held (as the exchange answers) by the given executors."""
    cids = {name: CID.for_block(f"records of {name}".encode()) for name in holders}
    for name, cid in cids.items():
        cluster.store.put(cid, f"records of {name}".encode())
    held = {cids[name]: {cluster.executors[i].peer_id: 20 for i in indexes} for name, indexes in holders.items()}

    async def holders_of(cid: CID) -> dict[str, int]:
        return dict(held.get(cid, {}))

    async def have_size(cid: CID) -> int | None:
        return None  # the requester holds no dataset

    exchange = cluster.requester.exchange
    exchange.holders, exchange.have_size = holders_of, have_size  # type: ignore[method-assign]
    return cids


async def _final(cluster: Cluster, group_id: str, timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            group = cluster.requester.groups.get(group_id)
            if group is not None and group.state.final:
                return group
            await asyncio.sleep(0.01)


def test_each_run_goes_to_its_datasets_holder_then_the_aggregator_gets_every_result(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=3)
    datasets = _datasets(cluster, {"site-a": [0], "site-b": [1], "site-c": [2]})

    async def scenario() -> None:
        spec = GroupSpec(cluster.agent, datasets, cluster.agent)
        group = await _final(cluster, cluster.requester.groups.submit(spec).group_id)
        assert group.state is GroupState.DONE, group.transitions
        shown = group_json(cluster.requester.groups, group)
        for index, name in enumerate(("site-a", "site-b", "site-c")):
            run = shown["runs"][name]
            assert run["node"] == cluster.executors[index].peer_id and run["state"] == "done" and run["receipt"]
        aggregate = cluster.jobs.get(group.aggregate)
        assert aggregate is not None and aggregate.state is JobState.DONE
        results = {name: cluster.jobs.get(job_id).results for name, job_id in group.runs.items()}  # type: ignore[union-attr]
        assert set(aggregate.spec.inputs) == set(datasets)  # one input per dataset, by its name
        assert {name: str(cid) for name, cid in aggregate.spec.inputs.items()} == {
            name: next(iter(r.values())) for name, r in results.items()
        }
        assert shown["result"] == next(iter(aggregate.results.values()))
        placement = group_placement(cluster.requester.groups, group)
        assert [run["dataset"] for run in placement["runs"]] == ["site-a", "site-b", "site-c", "(aggregate)"]
        first = placement["runs"][0]["candidates"]
        others = {cluster.executors[1].peer_id, cluster.executors[2].peer_id}  # they hold other datasets
        refused = {c["peer_id"]: c["reason"] for c in first if c["verdict"] == "refused"}
        assert all("does not hold its input 'data'" in refused[peer] for peer in others), refused

    _run(cluster, scenario)


def test_a_failing_holder_is_replaced_by_a_replica_holder(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=3)
    broken, replica = sorted(cluster.executors[:2], key=lambda e: e.peer_id)  # ties rank by peer ID: broken first
    indexes = [cluster.executors.index(broken), cluster.executors.index(replica)]
    datasets = _datasets(cluster, {"site-a": indexes})

    async def node_error(peer: str, request: bytes) -> list[bytes]:
        message = protocol.decode_request(request)
        if isinstance(message, Offer | OfferRun):  # accepted: the run follows on its own stream
            return [protocol.encode(OfferAnswer(True, "sure"))]
        from agents.outcome import Outcome

        return [protocol.encode(RunAnswer(Outcome.node_error("disk full")))]

    cluster.hub[broken.peer_id] = node_error

    async def scenario() -> None:
        group = await _final(
            cluster, cluster.requester.groups.submit(GroupSpec(cluster.agent, datasets, cluster.agent)).group_id
        )
        assert group.state is GroupState.DONE, group.transitions
        run = cluster.jobs.get(group.runs["site-a"])
        assert run is not None and list(run.results) == [replica.peer_id]
        assert any("disk full; failing over" in t.reason for t in run.transitions)

    _run(cluster, scenario)


def test_a_dataset_with_no_live_holder_fails_the_group_with_the_reason_and_no_aggregate(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=2)
    datasets = _datasets(cluster, {"site-a": [0], "site-b": []})  # site-b's holder is gone

    async def scenario() -> None:
        group = await _final(
            cluster, cluster.requester.groups.submit(GroupSpec(cluster.agent, datasets, cluster.agent)).group_id
        )
        assert group.state is GroupState.FAILED
        reason = group.transitions[-1][2]
        assert reason.startswith("1 of 2 run(s) failed, no aggregate: dataset site-b: no node can run this job")
        assert "does not hold its input 'data'" in reason and "site-a" not in reason
        assert group.aggregate == ""  # the aggregator never runs over part of the datasets
        assert sum(e.runtime.runs for e in cluster.executors) == 1

    _run(cluster, scenario)


def test_cancelling_a_group_cancels_its_runs(tmp_path: Path) -> None:
    cluster = build(tmp_path, executors=2)
    datasets = _datasets(cluster, {"site-a": [0], "site-b": [1]})

    async def scenario() -> None:
        spec = GroupSpec(cluster.agent, datasets, cluster.agent, args=("30",))
        submitted = cluster.requester.groups.submit(spec)
        async with asyncio.timeout(10):
            while sum(e.runtime.runs for e in cluster.executors) < 2:
                await asyncio.sleep(0.01)
        group = await cluster.requester.groups.cancel(submitted.group_id)
        assert group is not None and group.state is GroupState.CANCELLED
        for job_id in group.runs.values():
            assert (await cluster.final(job_id)).state is JobState.CANCELLED

    _run(cluster, scenario)


D = CID.for_block(b"d")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"datasets": {}}, "at least one"),
        ({"datasets": {"a/b": D}}, "plain name"),
        ({"datasets": {"a": "not a cid"}}, "plain name"),
        ({"shared": {"a": D}}, "used twice"),
        ({"input": "x/y"}, "input must be a plain name"),
        ({"agent": "x"}, "agent CIDs"),
        ({"surprise": 1}, "unknown group field"),
        ({"limits": {"cpu_seconds": 0}}, "cpu_seconds"),
        ({"datasets": {f"d{i}": D for i in range(65)}}, "at most 64"),
    ],
)
def test_malformed_group_specs_are_refused_with_the_reason(changes: dict[str, Any], message: str) -> None:
    record: dict[str, Any] = {"agent": AGENT, "aggregator": AGENT, "datasets": {"a": D}, **changes}
    with pytest.raises(JobError, match=message):
        GroupSpec.from_record(record)


def test_a_group_spec_round_trips_and_builds_the_runs_and_the_aggregate() -> None:
    spec = GroupSpec(AGENT, {"a": D, "b": D}, AGENT, shared={"round": D}, args=("x",), regions=("eu",))
    assert GroupSpec.from_record(spec.to_record()) == spec
    run = spec.run_spec("a")
    assert run.inputs == {"data": D, "round": D} and run.args == ("x",) and run.regions == ("eu",)
    assert set(spec.aggregate_spec({"a": D, "b": D}).inputs) == {"a", "b", "round"}
    with pytest.raises(JobError, match="missing"):
        spec.aggregate_spec({"a": D})


def test_a_restarted_requester_resumes_the_group_with_the_runs_it_recorded(tmp_path: Path) -> None:
    from node.scheduler.dispatcher import JobService

    cluster = build(tmp_path, executors=2)
    datasets = _datasets(cluster, {"site-a": [0], "site-b": [1]})

    async def scenario() -> None:
        first = cluster.requester
        submitted = first.groups.submit(GroupSpec(cluster.agent, datasets, cluster.agent, args=("0.3",)))
        async with asyncio.timeout(10):
            while sum(e.runtime.runs for e in cluster.executors) < 2:
                await asyncio.sleep(0.01)
        await first.stop()  # the requester goes down with both runs in flight
        runs = dict(first.groups.get(submitted.group_id).runs)  # type: ignore[union-attr]
        again = JobService(cluster.jobs, first.network, first.exchange, first.peers, first.local,
                           first.decider.own, None, first.policy)  # fmt: skip
        cluster.requester = again
        again.resume_unfinished()
        group = await _final(cluster, submitted.group_id)
        assert group.state is GroupState.DONE, group.transitions
        assert group.runs == runs  # the same runs, answered by their executors, not new ones
        assert sum(e.runtime.runs for e in cluster.executors) == 3  # two runs once each, then the aggregate

    _run(cluster, scenario)
