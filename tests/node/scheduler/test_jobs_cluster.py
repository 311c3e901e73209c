"""Jobs on a real 4-node cluster: placed by the data, never moving it, explained when refused."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agents import receipt
from node.cluster import http_json
from tests.support import REPO_ROOT, CliRunner

MIB = 1 << 20


def post(url: str, body: Any, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metric(api_url: str, name: str) -> float:
    with urllib.request.urlopen(f"{api_url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def wait_final(api_url: str, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http_json(f"{api_url}/v1/jobs/{job_id}")
        if job["state"] in ("done", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {http_json(f'{api_url}/v1/jobs/{job_id}')}")


def test_data_gravity_and_sovereignty(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    nodes = cluster(4, regions=["us", "us", "ap", "us"])
    requester, holder = nodes[0], nodes[2]
    words = b"the quick brown fox jumps over the lazy dog\n" * (100 * MIB // 44)
    status, uploaded = post(f"{holder.api_url}/v1/blobs", words, "application/octet-stream")
    assert status == 201
    dataset = uploaded["cid"]
    agent = mycel(
        "agent", "pack", REPO_ROOT / "examples" / "wasm-wordcount", data_dir_override=Path(requester.data_dir)
    )
    assert agent.returncode == 0, agent.stderr
    agent_id = agent.stdout.strip()
    before = {n.peer_id: metric(n.api_url, "mycel_bytes_out_total") for n in nodes}

    status, submitted = post(f"{requester.api_url}/v1/jobs", {"agent": agent_id, "inputs": {"text": dataset}})
    assert status == 201, submitted
    job = wait_final(requester.api_url, submitted["job_id"])
    assert job["state"] == "done", job["transitions"]
    assert list(job["results"]) == [holder.peer_id]  # it ran where the data is
    placement = http_json(f"{requester.api_url}/v1/jobs/{job['job_id']}/placement")["candidates"]
    assert placement[0]["peer_id"] == holder.peer_id and placement[0]["moved_bytes"] == 0
    moved = {n.peer_id: metric(n.api_url, "mycel_bytes_out_total") - before[n.peer_id] for n in nodes}
    assert moved[holder.peer_id] < 1 * MIB  # only the result and receipt left the holder, never the dataset
    assert sum(moved.values()) < 2 * MIB
    with urllib.request.urlopen(f"{requester.api_url}/v1/jobs/{job['job_id']}/receipt", timeout=10) as response:
        checked = receipt.verify(response.read())
    assert checked.node == holder.peer_id and str(checked.result) == job["result"]

    # the dataset is bound to the EU and no node is there: refused and explained, nothing moved
    status, submitted = post(
        f"{requester.api_url}/v1/jobs", {"agent": agent_id, "inputs": {"text": dataset}, "regions": ["eu"]}
    )
    job = wait_final(requester.api_url, submitted["job_id"])
    assert job["state"] == "failed"
    assert "may not leave eu" in job["transitions"][-1]["reason"]
    assert metric(holder.api_url, "mycel_bytes_out_total") - before[holder.peer_id] < 1 * MIB


def test_bad_job_requests_are_4xx(cluster: Any) -> None:
    (node,) = cluster(1)
    assert post(f"{node.api_url}/v1/jobs", {"inputs": {}})[0] == 400
    assert post(f"{node.api_url}/v1/jobs", {"agent": "nope"})[0] == 400
    assert post(f"{node.api_url}/v1/jobs", b"{not json")[0] == 400
    status, body = post(
        f"{node.api_url}/v1/jobs",
        {"agent": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "surprise": 1},
    )
    assert status == 400 and "unknown field" in body["detail"]
    try:
        urllib.request.urlopen(f"{node.api_url}/v1/jobs/unknown", timeout=10)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404


def test_job_cli_runs_explains_and_verifies_the_result(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    nodes = cluster(2, regions=["eu", "us"])
    requester, holder = nodes
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("alpha beta beta\n")
    data = mycel("put", tmp_path / "text", data_dir_override=Path(holder.data_dir)).stdout.strip()
    wordcount = REPO_ROOT / "examples" / "wasm-wordcount"
    agent = mycel("agent", "pack", wordcount, data_dir_override=Path(requester.data_dir)).stdout.strip()
    api = ("--api", requester.api_url)
    ran = mycel("job", "run", agent, "--input", f"text={data}", "--json", *api)
    assert ran.returncode == 0, ran.stderr
    job = json.loads(ran.stdout)
    assert job["state"] == "done" and list(job["results"]) == [holder.peer_id]
    explained = mycel("job", "explain", job["job_id"], *api)
    assert explained.stdout.startswith(f"chosen   {holder.peer_id}") and "standby" in explained.stdout
    status = mycel("job", "status", job["job_id"], *api)
    assert "done" in status.stdout and "placing" in status.stdout
    fetched = mycel("job", "result", job["job_id"], "-o", tmp_path / "result", *api)
    assert fetched.returncode == 0, fetched.stderr
    counts = json.loads((tmp_path / "result" / "counts.json").read_text())
    assert counts["words"] == 3 and counts["top"][0] == ["beta", 2]
    refused = mycel("job", "run", agent, "--input", f"text={data}", "--region", "mars", *api)
    assert refused.returncode == 1 and "may not leave mars" in refused.stderr  # a failed job: exit 1
    with urllib.request.urlopen(f"{requester.api_url}/v1/jobs/{job['job_id']}/events", timeout=10) as response:
        events = response.read().decode()
    assert events.count("event: state") == len(job["transitions"]) and '"state": "done"' in events


def test_the_executor_measures_the_input_bytes_it_fetched(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    """The demo's flake, made deterministic: the executor holds an input only inside another DAG
    (as a deployer holds its bundle's sample data), so no announcement lists it and the requester,
    holding it too, predicts it must move. The executor measures 0 fetched, and its offer's answer
    corrects the explanation; an input it must fetch is measured at its DAG size."""
    from storage.blockstore import BlockStore
    from storage.files import add_path

    requester, executor = cluster(2, regions=["eu", "eu"])
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "log.txt").write_text("pump three vibrated on tuesday\n" * (2 * MIB // 31))
    (tmp_path / "bundle" / "sample" / "queries").mkdir(parents=True)  # the executor's copy: a sub-DAG
    (tmp_path / "bundle" / "agent.txt").write_text("an agent that ships its sample queries\n")
    (tmp_path / "bundle" / "sample" / "queries" / "q.txt").write_text("which pump vibrated\n" * 50)
    (tmp_path / "far").mkdir()
    (tmp_path / "far" / "notes.txt").write_text("array b lost a fifth of its output\n" * 3000)

    def put(path: Path, node: Any) -> str:
        done = mycel("put", path, data_dir_override=Path(node.data_dir))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    big = put(tmp_path / "big", executor)
    put(tmp_path / "bundle", executor)  # pins the bundle's root only: its queries are in no summary
    queries = put(tmp_path / "bundle" / "sample" / "queries", requester)
    far = put(tmp_path / "far", requester)
    local = BlockStore(tmp_path / "sizes")  # the same import, for the DAGs' sizes and CIDs
    sizes = {str(added.cid): local.complete_dag_size(added.cid) for added in (
        add_path(local, tmp_path / "bundle" / "sample" / "queries"), add_path(local, tmp_path / "far"))}  # fmt: skip
    local.close()
    assert set(sizes) == {queries, far}
    agent = mycel("agent", "pack", REPO_ROOT / "examples" / "wasm-wordcount",
                  data_dir_override=Path(requester.data_dir)).stdout.strip()  # fmt: skip

    def run(inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        status, submitted = post(f"{requester.api_url}/v1/jobs", {"agent": agent, "inputs": inputs})
        assert status == 201, submitted
        job = wait_final(requester.api_url, submitted["job_id"])
        assert job["state"] == "done" and list(job["results"]) == [executor.peer_id], job["transitions"]
        placement = http_json(f"{requester.api_url}/v1/jobs/{job['job_id']}/placement")
        assert placement["input_bytes_fetched"] == job["input_bytes_fetched"]
        chosen = placement["candidates"][0]
        assert chosen["peer_id"] == executor.peer_id and chosen["verdict"] == "chosen"
        return job, chosen

    job, chosen = run({"docs": big, "queries": queries})
    assert job["input_bytes_fetched"] == {executor.peer_id: 0}  # it held every input: nothing fetched
    assert chosen["predicted_moved_bytes"] == sizes[queries]  # the view did not place the queries there
    assert chosen["moved_bytes"] == 0 and "by its offer" in chosen["reason"]  # its offer said it holds them
    explained = mycel("job", "explain", job["job_id"], "--api", requester.api_url)
    assert f"chosen   {executor.peer_id}" in explained.stdout and "ran it: fetched 0 input bytes" in explained.stdout

    job, chosen = run({"docs": big, "far": far})
    assert job["input_bytes_fetched"] == {executor.peer_id: sizes[far]} and sizes[far] > 0  # the whole DAG, measured
    assert chosen["moved_bytes"] == sizes[far] and "predicted_moved_bytes" not in chosen  # prediction was right
    status = mycel("job", "status", job["job_id"], "--api", requester.api_url)
    assert f"{executor.peer_id} fetched {sizes[far]:,} input bytes to run it" in status.stdout
