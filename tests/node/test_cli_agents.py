"""``mycel agent deploy|list`` against a real node."""

from __future__ import annotations

import json
from typing import Any

from agents.bundle import agent_id_of
from tests.support import REPO_ROOT, CliRunner


def test_deploy_then_list(cluster: Any, mycel: CliRunner) -> None:
    (node,) = cluster(1)
    api = ["--api", node.api_url]
    for name in ("wasm-wordcount", "sensor-anomaly"):
        deployed = mycel("agent", "deploy", REPO_ROOT / "examples" / name, *api)
        assert deployed.returncode == 0, deployed.stderr
        assert deployed.stdout.strip() == str(agent_id_of(REPO_ROOT / "examples" / name))
    listed = json.loads(mycel("agent", "list", "--json", *api).stdout)["agents"]
    assert [(a["name"], a["runtime"]) for a in listed] == [("sensor-anomaly", "python"), ("wasm-wordcount", "wasm")]
    broken = mycel("agent", "deploy", REPO_ROOT / "tests", *api)  # no mycel-agent.toml
    assert broken.returncode == 1 and broken.stderr.startswith("error:") and "mycel-agent.toml" in broken.stderr
