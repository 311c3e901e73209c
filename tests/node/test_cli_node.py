"""The operator's first hour with real node processes: ``mycel init``, ``node start`` (and a
restart), ``node status``, ``node doctor`` and ``node stop``, as the README's tour runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.cli.main import main
from node.cluster import free_port, http_json
from tests.support import CliResult

STARTUP_TIMEOUT = 120.0  # seconds; a loaded 2-core host imports web3 and libp2p slowly


class StartedNode:
    """``mycel node start`` as an operator runs it, its stdout read up to the last startup line."""

    def __init__(self, data_dir: Path, *flags: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYCEL_")}
        args = [sys.executable, "-m", "node.cli.main", "node", "start", "--data-dir", str(data_dir), *flags]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                     start_new_session=True)  # fmt: skip
        watchdog = threading.Timer(STARTUP_TIMEOUT, self.proc.kill)  # a hung start fails the test, not the run
        watchdog.start()
        self.lines: list[str] = []
        try:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("data dir "):  # the last startup line
                    break
        finally:
            watchdog.cancel()
        assert self.lines and self.lines[-1].startswith("data dir "), f"the node did not start: {self.lines}"

    def field(self, name: str) -> list[str]:
        return [line[len(name) :].strip() for line in self.lines if line.startswith(name + " ")]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


@pytest.fixture
def mycel(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The real ``mycel`` entry point, in this process: the imports are paid once, not per command."""
    for name in [name for name in os.environ if name.startswith("MYCEL_")]:
        monkeypatch.delenv(name)  # what the node runs with must come from the node, not this shell

    def run(*args: str | os.PathLike[str]) -> CliResult:
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


CliRunner = Callable[..., CliResult]


@pytest.fixture
def started() -> Iterator[list[StartedNode]]:
    nodes: list[StartedNode] = []
    yield nodes
    for node in nodes:
        node.close()


def test_init_settings_persist_across_restarts_and_stop_stops_the_node(
    mycel: CliRunner, tmp_path: Path, started: list[StartedNode]
) -> None:
    data_dir = tmp_path / "op"
    p2p, api = free_port(), free_port()
    init = mycel("init", "--data-dir", data_dir, "--region", "eu-x", "--listen", f"/ip4/127.0.0.1/tcp/{p2p}",
                 "--api", f"127.0.0.1:{api}", "--no-mdns")  # fmt: skip
    assert init.returncode == 0, init.stderr
    assert f"wrote {data_dir / 'node.toml'}" in init.stdout and "peer id" in init.stdout
    peer_id = init.stdout.split("peer id", 1)[1].split()[0]
    again = mycel("init", "--data-dir", data_dir, "--region", "other")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "--force" in again.stderr
    assert 'region = "eu-x"' in (data_dir / "node.toml").read_text()
    offline = mycel("node", "doctor", "--data-dir", data_dir)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert f"no node is running on {data_dir}; checked {data_dir / 'node.toml'} offline" in offline.stdout
    assert f"127.0.0.1:{api} is free" in offline.stdout

    for run in range(2):  # the second start has no flags but the data dir: node.toml holds the rest
        node = StartedNode(data_dir)
        started.append(node)
        assert node.lines[0] == f"mycel node {peer_id} up (region eu-x)"
        assert node.field("listen") == [f"/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer_id}"]
        assert node.field("api") == [f"http://127.0.0.1:{api}"]
        assert node.field("dashboard") == [f"http://127.0.0.1:{api}/"]
        assert node.field("config") == [str(data_dir / "node.toml")]
        info = http_json(f"http://127.0.0.1:{api}/v1/node")
        assert (info["peer_id"], info["region"]) == (peer_id, "eu-x"), run

        status = mycel("node", "status", "--data-dir", data_dir)
        assert status.returncode == 0, status.stderr
        assert "region: eu-x" in status.stdout and "settlement: off" in status.stdout
        assert f"config: {data_dir / 'node.toml'}" in status.stdout

        stop = mycel("node", "stop", "--data-dir", data_dir)
        assert stop.returncode == 0, stop.stderr
        assert stop.stdout == f"stopped the node on {data_dir} (pid {node.proc.pid})\n"
        assert node.proc.wait(5) == 0  # it had exited (or was a moment from it) when stop returned, cleanly

    none = mycel("node", "stop", "--data-dir", data_dir)
    assert none.returncode == 1 and none.stdout == ""
    assert none.stderr == f"error: no node is running on {data_dir} (start one with `mycel node start`)\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--api", "localhost"], "error: api.listen must be HOST:PORT"),
        (["--listen", "0.0.0.0:4001"], "error: node.listen: '0.0.0.0:4001' is not a TCP multiaddr"),
        (["--region", "eu west"], "error: node.region must be"),
        (["--rpc-url", "http://127.0.0.1:8545"], "error: settlement needs both chain.rpc_url and chain.contract"),
        (["--price", "1.5wei"], "is not a whole, non-negative number of wei"),
    ],
)
def test_init_refuses_bad_values_in_one_line_and_writes_nothing(
    mycel: CliRunner, tmp_path: Path, flags: list[str], message: str
) -> None:
    result = mycel("init", "--data-dir", tmp_path / "op", *flags)
    assert result.returncode in (1, 2) and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "op" / "node.toml").exists()


def test_a_killed_nodes_state_file_does_not_count_as_a_running_node(mycel: CliRunner, tmp_path: Path) -> None:
    data_dir = tmp_path / "op"
    data_dir.mkdir()
    # what a node killed with SIGKILL leaves: its state file, and a lock file nobody holds
    (data_dir / "node.json").write_text('{"pid": 1, "peer_id": "12D3KooWgone", "api_url": "http://127.0.0.1:9"}')
    (data_dir / "node.lock").write_text('{"pid": 1, "api_url": "http://127.0.0.1:9"}')
    status = mycel("node", "status", "--data-dir", data_dir)
    assert status.returncode == 1 and status.stderr.startswith(f"error: no node is running on {data_dir}")
    doctor = mycel("node", "doctor", "--data-dir", data_dir, "--json")
    node = next(check for check in json.loads(doctor.stdout) if check["name"] == "node")
    assert node["status"] == "warn" and node["detail"].startswith(f"no node is running on {data_dir}")


def test_init_force_changes_what_it_is_given_and_keeps_the_rest(mycel: CliRunner, tmp_path: Path) -> None:
    from node.config import load_config

    data_dir = tmp_path / "op"
    assert mycel("init", "--data-dir", data_dir, "--region", "eu-x", "--api", "127.0.0.1:6123").returncode == 0
    forced = mycel("init", "--data-dir", data_dir, "--force", "--price", "1gwei")
    assert forced.returncode == 0, forced.stderr
    config = load_config(data_dir / "node.toml")
    assert (config.region, config.api_host_port) == ("eu-x", ("127.0.0.1", 6123))
    assert config.get("capacity", "price_per_cpu_second") == 10**9
