"""``mycel data grant`` and ``put --private`` checks that need no node: keys and records stay on this side."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sdk.keys import Keypair
from storage.cid import CID
from storage.privacy.grant import verify_chain
from tests.support import CliRunner

DATASET = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def test_grant_chain_written_then_delegated_verifies(mycel: CliRunner, tmp_path: Path) -> None:
    owner_file, alice_file = tmp_path / "owner.key", tmp_path / "alice.key"
    alice, bob = Keypair.load_or_create(alice_file), Keypair.generate()
    first = mycel("data", "grant", DATASET, alice.id, "--key", owner_file, "-o", tmp_path / "a.json")
    assert first.returncode == 0, first.stderr
    delegated = mycel("data", "grant", DATASET, bob.id, "--key", alice_file, "--from", tmp_path / "a.json",
                      "--ttl", "60", "-o", tmp_path / "b.json")  # fmt: skip
    assert delegated.returncode == 0, delegated.stderr
    chain = [bytes.fromhex(link) for link in json.loads((tmp_path / "b.json").read_text())["chain"]]
    owner = Keypair.load_or_create(owner_file)
    last = verify_chain(chain, owner.id, CID.parse(DATASET), bob.id, CID.parse(DATASET), time.time())
    assert last.expires <= time.time() + 61  # narrowed to the delegate's ttl
    not_mine = mycel("data", "grant", DATASET, bob.id, "--key", owner_file, "--from", tmp_path / "a.json",
                     "-o", tmp_path / "c.json")  # fmt: skip
    assert not_mine.returncode == 2 and "not for this key" in not_mine.stderr and not_mine.stderr.count("\n") == 1


def test_put_private_needs_a_node_and_valid_terms(mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n")
    local = mycel("put", "--private", tmp_path / "data.csv")
    assert local.returncode == 2 and "--private stores through a node" in local.stderr
    (tmp_path / "terms.json").write_text(json.dumps({"holders": [], "surprise": 1}))
    bad = mycel(
        "put", "--private", "--policy", tmp_path / "terms.json", "--api", "http://127.0.0.1:9", tmp_path / "data.csv"
    )
    assert bad.returncode == 2 and "must be a JSON object of" in bad.stderr and bad.stderr.count("\n") == 1
