"""The dashboard in a real Chromium against a real cluster: the page loads under its strict
Content-Security-Policy, lists the cluster's peers, follows a job to done and shows why it
was placed where it ran. ``mycel job list`` is checked on the same cluster (one start).

Chromium is Debian's (``make setup`` installs it when apt can); playwright only drives it,
its own browser download is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from node.cluster import http_json
from tests.support import REPO_ROOT, CliRunner

SLOW = REPO_ROOT / "tests" / "agents" / "fixtures" / "slow-python"  # runs for argv[1] seconds
RECORD_STATES = """() => {
  window.seenStates = {};
  const record = () => {
    for (const tr of document.querySelectorAll("#jobs tr.job")) {
      const seen = (window.seenStates[tr.dataset.job] ||= []);
      if (seen[seen.length - 1] !== tr.dataset.state) seen.push(tr.dataset.state);
    }
  };
  new MutationObserver(record).observe(document.querySelector("#jobs tbody"), {childList: true, subtree: true});
}"""
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    candidates = [os.environ.get("MYCEL_CHROMIUM", ""), "/usr/bin/chromium"]
    candidates += [shutil.which(name) or "" for name in ("chromium", "chromium-browser", "google-chrome")]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


def post_json(url: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_dashboard_shows_peers_a_job_reaching_done_and_its_placement(
    cluster: Any, mycel: CliRunner, tmp_path: Path
) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (/usr/bin/chromium or chromium on PATH): run make setup, as root, to install it")
    from playwright.sync_api import sync_playwright

    requester, holder = cluster(2, regions=["eu", "us"])
    packed = mycel(
        "agent", "pack", REPO_ROOT / "bench" / "agents" / "trivial-wasm", data_dir_override=Path(requester.data_dir)
    )
    assert packed.returncode == 0, packed.stderr
    agent = packed.stdout.strip()
    slow = mycel("agent", "pack", SLOW, data_dir_override=Path(requester.data_dir))
    assert slow.returncode == 0, slow.stderr
    request = urllib.request.Request(f"{holder.api_url}/v1/blobs", b"x", {"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=30) as response:
        data = json.loads(response.read())["cid"]

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(requester.api_url + "/")
            page.wait_for_selector(f'#peers tr.peer[data-peer="{holder.peer_id}"][data-region="us"]')

            page.evaluate(RECORD_STATES)

            # a job that runs for seconds: the page must follow it live, from running to done
            body = {"agent": slow.stdout.strip(), "inputs": {"in": data}, "args": ["4"]}
            live = post_json(f"{requester.api_url}/v1/jobs", body)["job_id"]
            page.wait_for_selector(f'#jobs tr.job[data-job="{live}"][data-state="done"]', timeout=90_000)
            seen = page.evaluate("(id) => window.seenStates[id]", live)
            order = ["queued", "placing", "running", "verifying", "done"]
            assert "running" in seen and seen == sorted(seen, key=order.index), seen
            streamed = page.evaluate("() => performance.getEntriesByType('resource').map((e) => e.name)")
            assert f"{requester.api_url}/v1/jobs/{live}/events" in streamed  # followed by its event stream

            job_id = post_json(f"{requester.api_url}/v1/jobs", {"agent": agent, "inputs": {"in": data}})["job_id"]
            page.wait_for_selector(f'#jobs tr.job[data-job="{job_id}"][data-state="done"]', timeout=90_000)
            page.wait_for_selector("#job-detail:not([hidden]) #detail-state.done")
            page.wait_for_selector("#transitions li:has-text('done')")

            chosen = http_json(f"{requester.api_url}/v1/jobs/{job_id}/placement")["candidates"][0]
            assert chosen["verdict"] == "chosen" and chosen["peer_id"] == holder.peer_id
            row = page.locator("#placement tr.candidate", has=page.locator(f'code[title="{holder.peer_id}"]'))
            row.filter(has_text=chosen["reason"]).wait_for()
            assert row.locator(".verdict").inner_text() == "chosen"
            assert "receipt from" in page.locator("#settlement").inner_text()
            assert page.locator("#ready").inner_text() == "ready"
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert not problems, problems  # a Content-Security-Policy violation would show here
        finally:
            context.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 0

    listed = mycel("job", "list", "--json", "--api", requester.api_url)
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)["jobs"]
    assert [(j["job_id"], j["state"]) for j in jobs] == [(job_id, "done"), (live, "done")]
    assert "no jobs" in mycel("job", "list", "--state", "running", "--api", requester.api_url).stdout
    table = mycel("job", "list", "--agent", agent, "--limit", "1", "--api", requester.api_url).stdout
    assert table.startswith(f"{job_id}  done")
