"""One real node process: hostile bodies cannot kill it, and its data dir is its own."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.cluster import free_port, http_json, start_node_process


def post(url: str, body: bytes) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_api(proc: subprocess.Popen[bytes], url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the node exited with {proc.returncode}"
        try:
            http_json(f"{url}/v1/node", timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no API at {url} within {timeout} s")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    data_dir = tmp_path / "node"
    api = f"127.0.0.1:{free_port()}"
    proc = start_node_process(data_dir, f"/ip4/127.0.0.1/tcp/{free_port()}", api, [], "eu")
    url = f"http://{api}"
    try:
        wait_api(proc, url)
        yield url, proc, data_dir
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_deeply_nested_json_is_400_and_the_node_lives(node: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    url, proc, _ = node
    depth = 200_000
    for body in (b"[" * depth + b"]" * depth, b'{"":' * depth + b"1" + b"}" * depth):
        status, answer = post(f"{url}/v1/jobs", body)
        assert (status, answer["error"]) == (400, "bad_json")
    assert proc.poll() is None
    assert http_json(f"{url}/v1/node")["api_version"] == "v1"


def test_a_second_daemon_on_the_data_dir_is_refused_until_the_first_dies(
    node: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    import sys

    url, proc, data_dir = node
    args = [sys.executable, "-m", "node.cli.main", "node", "start", "--data-dir", str(data_dir), "--no-mdns",
            "--listen", f"/ip4/127.0.0.1/tcp/{free_port()}", "--api", f"127.0.0.1:{free_port()}"]  # fmt: skip
    second = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert second.stderr.count("\n") == 1 and f"pid {proc.pid} (api {url})" in second.stderr, second.stderr
    assert http_json(f"{url}/v1/node")["api_version"] == "v1"  # the first runs on, untouched

    proc.kill()  # a crash: the kernel drops the lock with the process
    proc.wait(20)
    api = f"127.0.0.1:{free_port()}"
    again = start_node_process(data_dir, f"/ip4/127.0.0.1/tcp/{free_port()}", api, [], "eu")
    try:
        wait_api(again, f"http://{api}")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(20) == 0


def test_the_lock_names_its_holder_only_while_held(tmp_path: Path) -> None:
    import os

    from node.daemon import DataDirLock, NodeNotRunningError, lock_holder, stop_daemon

    assert lock_holder(tmp_path) is None  # no lock file at all
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        assert lock_holder(tmp_path) == os.getpid()
    finally:
        lock.release()
    (tmp_path / "node.lock").write_text(json.dumps({"pid": 1, "api_url": ""}))  # stale: nobody holds it
    assert lock_holder(tmp_path) is None
    with pytest.raises(NodeNotRunningError, match=f"no node is running on {tmp_path}"):
        stop_daemon(tmp_path)
