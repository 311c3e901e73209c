"""The dashboard in a real Chromium against a real cluster: the page loads under its strict
Content-Security-Policy, lists the cluster's peers, follows a job to done and shows why it
was placed where it ran. ``mycel job list`` is checked on the same cluster (one start).

Chromium is Debian's (``make setup`` installs it when apt can); playwright only drives it,
its own browser download is never used.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web

from node.api.dashboard import routes as dashboard_routes
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


def chromium_or_skip() -> str:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (/usr/bin/chromium or chromium on PATH): run make setup, as root, to install it")
    return chromium


def post_json(url: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_dashboard_shows_peers_a_job_reaching_done_and_its_placement(
    cluster: Any, mycel: CliRunner, tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
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


JOB = "ab" * 16
CLAIMS = [
    {"job_id": JOB, "state": "settled", "amount": 700, "tx_hash": "0x" + "11" * 32, "created_at": 1.0},
    {"job_id": "cd" * 16, "state": "submitted", "amount": 300, "tx_hash": None, "created_at": 2.0},
    {"job_id": "ef" * 16, "state": "failed", "amount": 50, "tx_hash": None, "created_at": 3.0},
]
ANSWERS: dict[str, Any] = {
    "/v1/node": {"peer_id": "12D3KooWself", "region": "eu", "version": "0.1.0", "chain": {"chain_id": 31337}},
    "/ready": {"ready": True, "failed": []},
    "/v1/peers": {"peers": []},
    "/v1/jobs": {
        "jobs": [
            {
                "job_id": JOB,
                "state": "done",
                "agent": "bafyagent",
                "created": 1.0,
                "updated": 2.0,
                "reason": "result bafyresult",
            }
        ],
        "next_cursor": None,
    },
    f"/v1/jobs/{JOB}": {
        "job_id": JOB,
        "state": "done",
        "agent": "bafyagent",
        "paid": True,
        "result": "bafyresult",
        "chain_job_id": "0x" + "22" * 32,
        "receipts": {"12D3KooWpeer": "bafyreceipt"},
        "transitions": [{"state": "done", "at": 2.0, "reason": "result bafyresult"}],
    },
    f"/v1/jobs/{JOB}/placement": {"candidates": []},
    "/v1/storage": {"blocks": 0, "bytes": 0, "quota": None, "pins": 0},
    "/v1/pins": {"pins": []},
    "/v1/ledger": {
        "address": "0xnode",
        "contract": "0xledger",
        "chain_id": 31337,
        "registered": True,
        "claims": {"settled": 1, "submitted": 1, "failed": 1},
    },
    "/v1/ledger/claims": {"address": "0xnode", "claims": CLAIMS},
    "/v1/private": {
        "datasets": [
            {
                "dataset": "bafyprivatedataset",
                "owner": "12D3KooWowner",
                "state": "active",
                "version": 1,
                "policy": "bafypolicy",
                "holders": ["12D3KooWholder"],
                "expires": 2_000_000_000,
                "agents": ["bafyagent"],
                "publishers": [],
                "clients": 1,
                "max_result_bytes": 4096,
                "grants": 3,
                "refused": {"http": 2, "not_granted": 1},
            }
        ],
        "refused": {"http": 2, "not_granted": 1},
    },
}


@pytest.fixture
def settling_node() -> Iterator[str]:
    """The real dashboard routes beside canned answers of a node that settles on a chain: what
    the page makes of claims is checked without a chain, a paid job and a settlement round."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(ANSWERS[request.path])

    app = web.Application()
    app.add_routes([*dashboard_routes(), *(web.get(path, answer) for path in ANSWERS)])
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_dashboard_shows_claims_earnings_and_a_jobs_settlement(settling_node: str, tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = context.new_page()
            page.goto(settling_node + "/")
            page.locator("#ledger").filter(has_text="700 wei").wait_for()
            ledger = page.locator("#ledger").inner_text()
            assert "earned (settled)\t700 wei" in ledger or "earned (settled)\n700 wei" in ledger, ledger
            assert "300 wei" in ledger and "0xledger" in ledger
            assert page.locator("#claims tbody tr").count() == 3
            page.locator("#settlement").filter(has_text="settled, 700 wei, tx 0x1111").wait_for()
            private = page.locator("#private tr.private-dataset")  # policy, holders, grants, refusals by reason
            private.filter(has_text="http 2, not_granted 1").wait_for()
            assert page.locator("#private-section").is_visible()
            assert private.locator('code[title="bafypolicy"]').count() == 1 and "3" in private.inner_text()
            page.screenshot(path=str(tmp_path / "ledger.png"), full_page=True)
        finally:
            context.close()


@pytest.fixture
def docs_node() -> Iterator[str]:
    """The real API app (routes, middlewares, the docs assets and the OpenAPI document) on a
    real socket, over a node with no parts: the docs page reads only the document and /health."""
    from types import SimpleNamespace

    from node.api.app import build_app
    from node.metrics import Metrics

    config = SimpleNamespace(get=lambda section, key: "", api_host_port=("127.0.0.1", 0))
    app = build_app(cast(Any, SimpleNamespace(config=config, metrics=Metrics(), version="0.1.0-docs")))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_docs_page_lists_operations_shows_the_job_schema_and_tries_a_request(docs_node: str, tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(docs_node + "/docs")
            page.locator('#operations li[data-operation="POST /v1/jobs"]').click()
            schemas = page.locator("#operation pre.schema")
            schemas.filter(has_text='"needs_gpu"').first.wait_for()  # the request body, $refs inlined
            assert "0.1.0-docs" in page.locator("#version").inner_text()
            page.locator('#operations li[data-operation="GET /health"]').click()
            page.locator("#send").click()
            page.wait_for_selector('#result[data-status="200"]')
            assert '"status": "ok"' in page.locator("#result").inner_text()
            assert not problems, problems  # a Content-Security-Policy violation would show here
        finally:
            context.close()
