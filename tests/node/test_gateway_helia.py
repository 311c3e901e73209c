"""A real IPFS implementation fetches from a real node process through its trustless gateway.

tests/js/gateway_check.mjs runs Helia (@helia/verified-fetch over the trustless-gateway block
broker, no other gateway, router or DNS) against the node's API, checks the bytes of a
multi-block file and of every file of a directory, and parses the directory's CAR with @ipld/car,
re-hashing every block and reading the files back out of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import seeded_bytes

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "gateway_check.mjs"


def _post(url: str, body: bytes, content_type: str) -> str:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        cid: str = json.loads(response.read())["cid"]
        return cid


def _tar(tree: dict[str, bytes]) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in tree.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def test_helia_fetches_a_file_and_a_directory_and_verifies_the_car(cluster: Any) -> None:
    node_js = shutil.which("node")
    if node_js is None:
        pytest.skip("Node.js is not installed (make setup needs it for the dev chain too)")
    assert (ROOT / "node_modules" / "@helia" / "verified-fetch").is_dir(), "run `make setup` (npm ci) first"
    (node,) = cluster(1)
    file = seeded_bytes("helia-file", 700_000)  # three 256 KiB chunks under a dag-pb root
    tree = {"a.txt": b"alpha\n", "sub/b.bin": seeded_bytes("helia-b", 300_000), "sub/c.txt": b"c"}
    spec = {
        "gateway": node.api_url,
        "file": {"cid": _post(f"{node.api_url}/v1/blobs", file, "application/octet-stream"),
                 "sha256": hashlib.sha256(file).hexdigest()},
        "dir": {"cid": _post(f"{node.api_url}/v1/blobs", _tar(tree), "application/x-tar"),
                "entries": {name: hashlib.sha256(data).hexdigest() for name, data in tree.items()}},
    }  # fmt: skip
    done = subprocess.run(
        [node_js, str(SCRIPT), json.dumps(spec)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"{done.stdout}\n{done.stderr}"
    result = json.loads(lines[-1])
    assert result == {"ok": True, "fileBytes": len(file), "dirBytes": sum(map(len, tree.values())),
                      "carBlocks": 7}, result  # fmt: skip  # root, a.txt, sub, b.bin and its 2 leaves, c.txt
