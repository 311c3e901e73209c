"""Cluster helpers for corroboration tests: rogue node processes and shared operator keys."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.scheduler.operator import KEY_FILE, write_key
from tests.support import REPO_ROOT


def with_rogues(monkeypatch: pytest.MonkeyPatch, rogues: set[str]) -> None:
    """Make the cluster fixture start the nodes whose data dir is named in ``rogues`` (e.g.
    "node1") as :mod:`tests.node.scheduler.rogue_node`: the same node, fabricating results."""
    from node import cluster as cluster_module

    honest: Callable[..., subprocess.Popen[bytes]] = cluster_module.start_node_process

    def start(
        data_dir: Path, listen: str, api: str, bootstrap: list[str], region: str, extra_env: Any = None
    ) -> subprocess.Popen[bytes]:
        if data_dir.name not in rogues:
            return honest(data_dir, listen, api, bootstrap, region, extra_env)
        data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "tests.node.scheduler.rogue_node", "node", "start", "--data-dir", str(data_dir)]
        args += ["--listen", listen, "--api", api, "--region", region, "--no-mdns"]
        for address in bootstrap:
            args += ["--bootstrap", address]
        env = dict(os.environ, **(extra_env or {}))
        env.pop("MYCEL_DATA_DIR", None)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        log = open(data_dir / "node.log", "ab")  # noqa: SIM115 - handed to the child
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    monkeypatch.setattr(cluster_module, "start_node_process", start)


def share_operator(cluster_dir: Path, nodes: list[str]) -> str:
    """Give the named nodes of the cluster about to start in ``cluster_dir`` one operator key;
    returns the operator's id."""
    from storage.peerid import peer_id_for

    key = nacl.signing.SigningKey.generate()
    for name in nodes:
        (cluster_dir / name).mkdir(parents=True, exist_ok=True)
        write_key(cluster_dir / name / KEY_FILE, key)
    return peer_id_for(bytes(key.verify_key))
