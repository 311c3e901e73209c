"""examples/sdk_quickstart.py and examples/pipeline.py, run as a user would, on a real cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support import REPO_ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)


def test_quickstart_and_pipeline(cluster: Any) -> None:
    requester, edge = cluster(2, regions=["core", "edge"])
    quick = _run("examples/sdk_quickstart.py", "--api", requester.api_url)
    assert quick.returncode == 0, quick.stderr
    assert "receipt verified" in quick.stdout and "verified by CID: 12 words" in quick.stdout

    pipeline = _run("examples/pipeline.py", "--api", requester.api_url, "--data-api", edge.api_url, "--json")
    assert pipeline.returncode == 0, pipeline.stderr
    report = json.loads(pipeline.stdout)
    first, second = report["steps"]
    assert first["node"] == second["node"] == edge.peer_id  # each step next to its input
    assert first["moved_bytes"] == second["moved_bytes"] == 0
    assert second["input"] == first["result"]  # chained by CID
    assert report["final"]["files"] == 2  # anomalies.json and summary.json
