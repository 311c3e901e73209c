"""Two real node processes over real libp2p: A holds a stream written with the SDK and the CLI,
B replicates it over /mycel/stream/1.0.0 and verifies the chain, and B sees A's head in A's
signed announcement. The CLI tails B's replica."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.cluster import http_json
from sdk import Client
from sdk.streams import load_key, verify_chain
from tests.support import CliRunner


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _wait(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_replica_pulls_verifies_and_sees_the_announced_head(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    a, b = cluster(2, timeout=20)
    key_file = tmp_path / "writer.key"
    created = mycel("stream", "create", "sensors", "--key", key_file)
    assert created.returncode == 0, created.stderr
    stream = created.stdout.strip()
    keep = ("--keep", "100")
    appended = mycel("stream", "append", "sensors", "one", "two", "--key", key_file, *keep, "--api", a.api_url)
    assert appended.returncode == 0 and f"{stream} head 2 " in appended.stdout, appended.stderr

    async def sdk_append() -> None:
        async with Client(a.api_url) as client:
            writer = client.stream("sensors", load_key(key_file))
            assert writer.id == stream
            await writer.append(b"three")
            assert [e.payload for e in await writer.entries()] == [b"one", b"two", b"three"]

    asyncio.run(sdk_append())

    subscribed = _post(f"{b.api_url}/v1/streams/{stream}/subscribe", {"peer": a.peer_id})
    assert subscribed["head_seq"] == 3 and subscribed["source"] == a.peer_id
    page = http_json(f"{b.api_url}/v1/streams/{stream}/entries?after=0")
    entries = verify_chain(stream, [base64.b64decode(e["data"]) for e in page["entries"]])
    assert [e.payload for e in entries] == [b"one", b"two", b"three"]
    on_a = http_json(f"{a.api_url}/v1/streams/{stream}")
    assert str(entries[-1].cid) == on_a["head_cid"]  # the same signed bytes, hash for hash
    assert on_a["retention"] == {"entries": 100, "seconds": 0} and on_a["origin"]

    # a later append reaches the replica without being asked, and A's announcement carries the head
    assert mycel("stream", "append", "sensors", "four", "--key", key_file, "--api", a.api_url).returncode == 0
    _wait(lambda: http_json(f"{b.api_url}/v1/streams/{stream}")["head_seq"] == 4)
    # heads travel in announcements, so an earlier one may still name an older head: wait for 3+
    _wait(lambda: [h["seq"] >= 3 for h in http_json(f"{b.api_url}/v1/streams/{stream}")["holders"]] == [True])
    [holder] = http_json(f"{b.api_url}/v1/streams/{stream}")["holders"]
    assert holder["peer"] == a.peer_id and holder["seq"] >= 3

    info = http_json(f"{b.api_url}/v1/streams/{stream}")
    assert not info["origin"] and info["source"] == a.peer_id and not info["forked"]
    tailed = mycel("stream", "tail", stream, "--after", "0", "--count", "4", "--api", b.api_url)
    assert tailed.returncode == 0, tailed.stderr
    assert [json.loads(line)["text"] for line in tailed.stdout.splitlines()] == ["one", "two", "three", "four"]
    listed = mycel("stream", "ls", "--api", b.api_url)
    assert f"{stream}  sensors  seq 4  replica of {a.peer_id}" in listed.stdout
    # the replica is not a writer's node: an append there is refused, the replica unchanged
    refused = mycel("stream", "append", "sensors", "five", "--key", key_file, "--api", b.api_url)
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1
    assert http_json(f"{b.api_url}/v1/streams/{stream}")["head_seq"] == 4
