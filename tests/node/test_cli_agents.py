"""``mycel agent deploy|list`` and running an agent by name against a real node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.bundle import agent_id_of
from storage.cid import CID
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


def test_a_new_agent_runs_by_name_on_a_real_node(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    """The README's developer path: init, deploy, run by name, follow the logs; an unknown name,
    a package the node lacks and an input nobody holds each fail in one line, before submitting."""
    (node,) = cluster(1)
    api = ["--api", node.api_url]
    assert mycel("agent", "init", "greeter", "--dir", tmp_path / "greeter").returncode == 0
    deployed = mycel("agent", "deploy", tmp_path / "greeter", *api).stdout.strip()
    data = mycel("put", tmp_path / "greeter" / "sample.txt", *api).stdout.strip()
    ran = mycel("job", "run", "greeter@0.1.0", "--input", f"input={data}", "--json", *api)
    assert ran.returncode == 0, ran.stderr
    job = json.loads(ran.stdout)
    assert job["state"] == "done" and job["agent"] == deployed
    followed = mycel("job", "logs", job["job_id"], "--follow", *api)
    assert followed.returncode == 0 and followed.stdout == f"== {node.peer_id}\ncounted 1 input(s)\n"
    assert "done" in followed.stderr.splitlines()[-1]
    listed = json.loads(mycel("job", "list", "--agent", "greeter", "--json", *api).stdout)["jobs"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]

    unknown = mycel("job", "run", "greetr", "--input", f"input={data}", *api)
    assert unknown.returncode == 1
    assert unknown.stderr == "error: no agent named greetr on this node (deploy it with 'mycel agent deploy DIR')\n"
    manifest = tmp_path / "greeter" / "mycel-agent.toml"
    newer = manifest.read_text().replace('version = "0.1.0"', 'version = "0.2.0"\nrequires = ["numpy>=99"]')
    manifest.write_text(newer)
    assert mycel("agent", "deploy", tmp_path / "greeter", *api).returncode == 0
    lacking = mycel("job", "run", "greeter", "--input", f"input={data}", *api)  # the newest: 0.2.0
    assert lacking.returncode == 1 and lacking.stderr.count("\n") == 1
    assert lacking.stderr.startswith("error: agent greeter requires numpy>=99 (has 2.")
    nobody = CID.for_block(b"no node holds this", 0x55)
    missing = mycel("job", "run", "greeter@0.1.0", "--input", f"input={nobody}", *api)
    assert missing.returncode == 1 and missing.stderr.startswith(f"error: no node holds input={nobody}")
    assert len(json.loads(mycel("job", "list", "--json", *api).stdout)["jobs"]) == 1  # none of those was sent
