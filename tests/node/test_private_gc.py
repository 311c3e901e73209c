"""`mycel gc` and the private index: a GC'd private dataset leaves no index rows behind.

The index (node.privacy.registry) lives beside the store; without the prune a deleted
private DAG's rows would stay forever (and keep its CIDs "private" should public content
with the same blocks arrive later). The real CLI runs GC, as an operator does.
"""

from __future__ import annotations

import time
from pathlib import Path

import nacl.signing

from node.privacy.registry import PrivacyRegistry
from storage.blockstore import BlockStore
from storage.files import add_path
from storage.peerid import peer_id_for
from storage.privacy.policy import Policy, Revocation
from tests.support import CliRunner, seeded_bytes


def test_gc_drops_the_private_rows_of_deleted_datasets_only(tmp_path: Path, mycel: CliRunner) -> None:
    key = nacl.signing.SigningKey.generate()
    owner = peer_id_for(bytes(key.verify_key))

    def sign(message: bytes) -> bytes:
        return bytes(key.sign(message).signature)

    data_dir = tmp_path / "mycel-data"
    store, registry = BlockStore(data_dir / "blocks"), PrivacyRegistry(data_dir / "privacy")
    roots = {}
    for name in ("dropped", "kept", "revoked"):
        path = tmp_path / name
        path.write_bytes(seeded_bytes(name, 600_000))  # 3 leaves and a root each
        root = add_path(store, path).cid
        blocks = [cid for cid, _ in store.walk(root)]
        registry.lock(root, owner, blocks)
        registry.apply(Policy(root, owner, 1, int(time.time()) + 600).sign(sign).data)
        roots[name] = (root, blocks)
    registry.apply(Revocation(roots["revoked"][0], owner, 1, int(time.time())).sign(sign).data)
    store.unpin(roots["dropped"][0])
    store.unpin(roots["revoked"][0])
    registry.close()
    store.close()

    gc = mycel("gc")
    assert gc.returncode == 0, gc.stderr
    assert "removed 8 blocks" in gc.stdout  # the two unpinned DAGs

    registry = PrivacyRegistry(data_dir / "privacy")
    try:
        dropped, dropped_blocks = roots["dropped"]
        assert registry.state(dropped) is None  # no dataset row ...
        assert all(registry.datasets_of(block) == [] for block in dropped_blocks)  # ... and no block row
        kept, kept_blocks = roots["kept"]
        assert registry.state(kept) is not None and registry.state(kept).state == "active"  # type: ignore[union-attr]
        assert all(registry.datasets_of(block) == [kept] for block in kept_blocks)  # still pinned: still private
        revoked, revoked_blocks = roots["revoked"]
        assert registry.state(revoked).state == "revoked"  # type: ignore[union-attr]  # the tombstone stays
        assert all(registry.datasets_of(block) == [] for block in revoked_blocks if block != revoked)  # rows gone
    finally:
        registry.close()
