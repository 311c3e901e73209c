"""The ``mycel`` commands that talk to a node, as a subprocess against a fake node's HTTP API:
exit codes as the README documents them, one error line, --api/--token on every one of them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.cid import CID
from tests.sdk.fakenode import FakeNode, fake_node, not_http
from tests.support import CliRunner

JOB = "d" * 32
AGENT = str(CID.for_block(b"agent", 0x71))  # an agent id: the fake node resolves no names


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with fake_node() as serving:
        serving.token = "s3cret"
        yield serving


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_put_get_cat_through_a_node_with_a_token(node: FakeNode, mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "a.txt").write_text("alpha\n")
    (tmp_path / "one.txt").write_text("one\n")
    api = ["--api", node.url, "--token", node.token]
    put = mycel("put", tmp_path / "src", *api)
    assert put.returncode == 0, put.stderr
    root = put.stdout.strip()
    assert root == mycel("cid", tmp_path / "src").stdout.strip()
    got = mycel("get", root, "-o", tmp_path / "out", *api)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out" / "sub" / "a.txt").read_text() == "alpha\n"
    file_cid = mycel("put", tmp_path / "one.txt", *api).stdout.strip()
    assert mycel("cat", file_cid, *api).stdout == "one\n"
    assert not any(Path(tmp_path / "mycel-data").glob("blocks/*")), "went to the local store, not the node"

    refused = mycel("cat", file_cid, "--api", node.url)  # no token
    assert refused.returncode == 1 and "bearer token" in _one_error_line(refused.stderr)


def test_token_and_url_from_the_environment(node: FakeNode, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("from env\n")
    env = dict(os.environ, MYCEL_API_URL=node.url, MYCEL_API_TOKEN=node.token or "", MYCEL_DATA_DIR=str(tmp_path))
    run = [sys.executable, "-m", "node.cli.main"]
    put = subprocess.run([*run, "put", tmp_path / "f"], capture_output=True, text=True, env=env, timeout=60)
    assert put.returncode == 0, put.stderr
    status = subprocess.run([*run, "node", "status"], capture_output=True, text=True, env=env, timeout=60)
    assert status.returncode == 0 and "region: test" in status.stdout, status.stderr


def test_get_into_a_non_empty_directory_is_a_usage_error(node: FakeNode, mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("alpha\n")
    cid = node.add_directory(tmp_path / "src")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep").write_text("mine")
    got = mycel("get", str(cid), "-o", tmp_path / "mine", "--api", node.url, "--token", node.token)
    assert got.returncode == 2 and "not empty" in _one_error_line(got.stderr)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["keep"]


def test_cat_of_a_directory_is_a_usage_error(node: FakeNode, mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("alpha\n")
    remote = mycel("cat", str(node.add_directory(tmp_path / "src")), "--api", node.url, "--token", node.token)
    assert remote.returncode == 2 and "is a directory" in _one_error_line(remote.stderr)
    local = mycel("cat", mycel("put", tmp_path / "src").stdout.strip())
    assert local.returncode == 2 and "is a directory" in _one_error_line(local.stderr)


def test_tampered_content_exits_3(node: FakeNode, mycel: CliRunner, tmp_path: Path) -> None:
    cid = node.add_file(b"honest\n")
    node.blobs[str(cid)].body = b"forged\n"
    got = mycel("get", str(cid), "-o", tmp_path / "x", "--api", node.url, "--token", node.token)
    assert got.returncode == 3 and "does not hash" in _one_error_line(got.stderr)
    assert not (tmp_path / "x").exists()


def test_job_run_prints_the_id_before_waiting_and_in_the_final_line(node: FakeNode, tmp_path: Path) -> None:
    seen_id = threading.Event()
    held: list[bool] = []
    node.between_events = lambda index: held.append(seen_id.wait(20)) if index == 1 else None
    command = [sys.executable, "-m", "node.cli.main", "job", "run", AGENT, "--api", node.url,
               "--token", node.token or ""]  # fmt: skip
    env = dict(os.environ, MYCEL_DATA_DIR=str(tmp_path))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        first = proc.stderr.readline()  # the job is held at "queued" until this line has been read
        job_id = first.split()[1]
        assert first.startswith("job ") and len(job_id) == 32, first
        seen_id.set()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert held == [True]
    assert out.strip().splitlines()[-1].startswith(f"job {job_id} done: result ")


def test_a_failed_job_exits_1_with_one_line(node: FakeNode, mycel: CliRunner) -> None:
    node.add_job(JOB, ["queued", "failed"])
    status = mycel("job", "status", JOB, "--api", node.url, "--token", node.token)
    assert status.returncode == 0 and "failed" in status.stdout
    result = mycel("job", "result", JOB, "-o", "out", "--api", node.url, "--token", node.token)
    assert result.returncode == 1 and JOB in _one_error_line(result.stderr)


def test_job_run_of_a_failing_job_exits_1_not_3(mycel: CliRunner) -> None:
    """A failed job is an operation that failed (1), not a verification that failed (3)."""
    with fake_node() as open_node:
        open_node.submitted_states = ["queued", "running", "failed"]
        ran = mycel("job", "run", AGENT, "--api", open_node.url)
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert lines[0].startswith("job ") and "Traceback" not in ran.stderr  # the id, then live progress
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]  # the failure, once
    assert lines[-1].startswith(f"error: job {lines[0].split()[1]} failed: reason 2")
    assert ran.stdout == ""


def test_job_cancel_calls_delete(node: FakeNode, mycel: CliRunner) -> None:
    node.add_job(JOB, ["queued", "running"])
    cancelled = mycel("job", "cancel", JOB, "--api", node.url, "--token", node.token)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"job {JOB}: cancelled"
    assert f"DELETE /v1/jobs/{JOB}" in node.requests
    unknown = mycel("job", "cancel", "e" * 32, "--api", node.url, "--token", node.token)
    assert unknown.returncode == 1 and "no job" in _one_error_line(unknown.stderr)


@pytest.mark.parametrize(
    "command",
    [
        ("node", "status"),
        ("job", "status", JOB),
        ("cat", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
        ("ledger", "claims"),
        ("agent", "list"),
    ],
)
def test_api_at_a_port_that_is_not_http_is_one_line(mycel: CliRunner, command: tuple[str, ...]) -> None:
    with not_http() as url:
        answer = mycel(*command, "--api", url)
    assert answer.returncode == 1
    assert "does not answer in HTTP" in _one_error_line(answer.stderr)


def test_usage_errors_exit_2(mycel: CliRunner) -> None:
    bad = mycel("job", "run", AGENT, "--input", "no-equals-sign")
    assert bad.returncode == 2 and "NAME=CID" in _one_error_line(bad.stderr)


def test_no_node_at_the_address_says_how_to_start_one(mycel: CliRunner) -> None:
    from node.cluster import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    answer = mycel("job", "status", JOB, "--api", url)
    assert answer.returncode == 1
    line = _one_error_line(answer.stderr)
    assert url in line and "mycel node start" in line and "Traceback" not in answer.stderr
