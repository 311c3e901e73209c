"""The developer's first hour through the CLI: scaffold an agent, run it locally, follow a job's
logs, list peers, and the one-line errors for an input nobody holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.cli.agent_init import SAMPLE
from node.cli.peers_cmd import table
from storage.cid import CID
from tests.sdk.fakenode import FakeNode, fake_node
from tests.support import CliRunner

AGENT = str(CID.for_block(b"agent", 0x71))


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with fake_node() as serving:
        yield serving


@pytest.mark.parametrize("runtime", ["python", "wasm"])
def test_init_then_the_scaffolds_local_test_passes(runtime: str, mycel: CliRunner, tmp_path: Path) -> None:
    """``agent init`` writes an agent whose own test_local.py runs it in the node's sandbox
    (``mycel agent run DIR --input input=PATH -o OUT``) and finds the expected output."""
    created = mycel("agent", "init", "hello", "--runtime", runtime, "--dir", tmp_path / "hello")
    assert created.returncode == 0, created.stderr
    env = dict(os.environ, MYCEL_DATA_DIR=str(tmp_path / "data"))
    local = subprocess.run([sys.executable, tmp_path / "hello" / "test_local.py"], capture_output=True, text=True,
                           env=env, timeout=120)  # fmt: skip
    assert local.returncode == 0, local.stdout + local.stderr
    assert "ok: the output matches expected/" in local.stdout
    expected = {"python": "counts.json", "wasm": "upper.txt"}[runtime]
    text = (tmp_path / "hello" / "expected" / expected).read_text()
    assert text == (SAMPLE.upper() if runtime == "wasm" else text)
    if runtime == "python":
        assert json.loads(text) == {"input": {"bytes": 25, "lines": 2, "words": 4}}
    again = mycel("agent", "init", "hello", "--dir", tmp_path / "hello")
    assert again.returncode == 2 and "not empty" in again.stderr


def test_agent_run_refuses_an_input_that_is_neither_a_cid_nor_a_path(mycel: CliRunner, tmp_path: Path) -> None:
    ran = mycel("agent", "run", tmp_path, "--input", "text=./no-such-file")
    assert ran.returncode == 2 and "neither a CID nor an existing file" in ran.stderr


def test_an_input_nobody_holds_fails_once_before_submitting(node: FakeNode, mycel: CliRunner) -> None:
    held = node.add_file(b"held\n")
    nobody = CID.for_block(b"nobody has this", 0x55)
    ran = mycel("job", "run", AGENT, "--input", f"a={held}", "--input", f"b={nobody}", "--api", node.url)
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        f"error: no node holds b={nobody} (store it first: mycel put PATH --api URL; a private dataset "
        "has no provider records: run with the client key its policy or grant names)"
    ]
    assert "POST /v1/jobs" not in node.requests


def test_logs_follow_prints_each_nodes_output_then_ends(node: FakeNode, mycel: CliRunner) -> None:
    job = node.add_job("e" * 32, ["queued", "running", "done"])
    job["logs"] = {"12D3KooWpeer": "line one\nline two\n"}
    followed = mycel("job", "logs", "e" * 32, "--follow", "--api", node.url)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "== 12D3KooWpeer\nline one\nline two\n"
    assert [line.split()[0] for line in followed.stderr.splitlines()] == ["queued", "running", "done"]


def test_ctrl_c_stops_following_quietly_with_130(node: FakeNode, tmp_path: Path) -> None:
    node.add_job("f" * 32, ["queued", "running", "done"])
    release = threading.Event()
    node.between_events = lambda index: release.wait(120)  # the job stays "queued" until the test ends
    command = [sys.executable, "-m", "node.cli.main", "job", "logs", "f" * 32, "--follow", "--api", node.url]
    env = dict(os.environ, MYCEL_DATA_DIR=str(tmp_path))
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stderr is not None
            first = proc.stderr.readline()
            assert first.split()[:1] == ["queued"], first  # following, held open
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
    finally:
        release.set()
    assert (proc.returncode, out, err) == (130, "", "")


def test_peers_prints_a_table_with_headers(node: FakeNode, mycel: CliRunner) -> None:
    row = {"peer_id": "12D3KooWexample", "region": "eu-west", "load": {"running_jobs": 1},
           "capacity": {"cpu_cores": 4}, "price": 1000, "last_seen_seconds_ago": 2.4, "alive": True}  # fmt: skip
    node.peers = [row, {**row, "peer_id": "12D3KooWgone", "region": "", "alive": False}]
    listed = mycel("peers", "--api", node.url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["PEER", "ID", "REGION", "LOAD/CAPACITY", "PRICE", "LAST", "SEEN"]
    assert lines[1].split() == ["12D3KooWexample", "eu-west", "1/4", "1000", "wei/cpu-s", "2", "s", "ago"]
    assert lines[2].split()[1] == "-" and lines[2].endswith("(gone)")
    assert listed.stdout == table(node.peers) + "\n"
    as_json = mycel("peers", "--json", "--api", node.url)
    assert json.loads(as_json.stdout) == {"peers": node.peers}


def test_agent_env_lists_the_interpreter_packages_and_wasm_runtime(mycel: CliRunner) -> None:
    from agents.environment import agent_environment

    env = agent_environment()
    listed = mycel("agent", "env", "--local")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"python: {env.python} ({len(env.packages)} packages)"
    assert lines[1] == f"wasm:   {env.wasm} (WASI preview1)" and lines[2] == f"hash:   {env.hash}"
    assert f"  numpy=={env.packages['numpy']}" in lines
