"""Bitswap between a real node process and a real Helia node (js-libp2p, TCP + Noise + Yamux).

tests/js/bitswap_peer.mjs runs Helia with bitswap as its only block source and no routing at
all: it dials the node, and every block it gets comes over /ipfs/bitswap/1.2.0 from the node.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node.test_cluster import http, metric
from tests.node.test_private_serving import Owner, put_private
from tests.support import seeded_bytes

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "js" / "bitswap_peer.mjs"


class Helia:
    """The Helia process, one JSON command per line."""

    def __init__(self) -> None:
        node_js = shutil.which("node")
        if node_js is None:
            pytest.skip("Node.js is not installed (make setup needs it for the dev chain too)")
        assert (ROOT / "node_modules" / "@helia" / "bitswap").is_dir(), "run `make setup` (npm ci) first"
        self.proc = subprocess.Popen(
            [node_js, str(SCRIPT)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ready = self._read()
        assert self.ready.get("ready"), self.ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the Helia process ended (exit {self.proc.poll()})"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def __call__(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def helia() -> Iterator[Helia]:
    peer = Helia()
    yield peer
    peer.close()


def _post(api_url: str, data: bytes) -> str:
    status, body = http("POST", f"{api_url}/v1/blobs", data, {"Content-Type": "application/octet-stream"})
    assert status == 201, body
    cid: str = json.loads(body)["cid"]
    return cid


def test_helia_and_the_node_fetch_from_each_other_and_private_blocks_stay(cluster: Any, helia: Helia) -> None:
    """One node and one Helia process for all three checks (each start costs seconds on 2 cores)."""
    (node,) = cluster(1)
    data = seeded_bytes("bitswap-file", 1_500_000)  # six 256 KiB raw leaves under a dag-pb root
    cid = _post(node.api_url, data)
    public = _post(node.api_url, seeded_bytes("public", 1000))
    private = put_private(node.api_url, seeded_bytes("secret", 1000), Owner())  # one raw block, locked
    assert helia(op="dial", addr=node.multiaddr) == {"ok": True}

    # (1) Helia fetches a multi-block UnixFS file, every block over bitswap from the node
    got = helia(op="cat", cid=cid, timeoutMs=30_000)
    assert got["ok"] and got["size"] == len(data) and got["sha256"] == hashlib.sha256(data).hexdigest(), got
    assert metric(node.api_url, "mycel_bitswap_blocks_sent_total") == 7

    # (2) the node fetches a file Helia added: Helia has no /mycel/blocks, so the fetch goes over bitswap
    added = helia(op="add", size=900_000, seed="from-helia")  # four leaves; the node has none of it
    assert added["ok"], added
    started = time.monotonic()
    status, body = http("GET", f"{node.api_url}/v1/blobs/{added['cid']}")
    assert status == 200 and hashlib.sha256(body).hexdigest() == added["sha256"], (status, body[:200])
    assert time.monotonic() - started < 20
    assert 900_000 < metric(node.api_url, "mycel_bytes_in_total") < 901_000  # the leaves and the dag-pb root

    # (3) a private block is not served to Helia; a public one on the same path is
    assert helia(op="get", cid=public, timeoutMs=20_000)["ok"]
    sent = metric(node.api_url, "mycel_bytes_out_total")
    refused = metric(node.api_url, "mycel_private_blocks_refused_total")
    answer = helia(op="get", cid=private, timeoutMs=1_500)
    assert not answer["ok"], answer
    assert metric(node.api_url, "mycel_bytes_out_total") == sent > len(data) + 1000  # the file, its root, public
    assert metric(node.api_url, "mycel_private_blocks_refused_total") > refused
