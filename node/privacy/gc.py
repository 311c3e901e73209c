"""After a GC: the private-block index forgets the blocks (and datasets) the sweep deleted.

Run by ``mycel gc`` under the store's GC lock (:meth:`storage.blockstore.BlockStore.gc`'s
``then``), so no import indexes and writes blocks meanwhile: a row dropped here is one whose
block is really gone, and a block being fetched keeps its row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from node.privacy.registry import PrivacyRegistry
from storage.blockstore import BlockStore

log = logging.getLogger("mycelnet.privacy")


def prune_after_gc(data_dir: Path, store: BlockStore) -> Callable[[], object]:
    """The ``then`` of ``store.gc``: prune the node's private index (none there: nothing to do)."""

    def prune() -> None:
        path = data_dir / "privacy"
        if not path.exists():
            return
        registry = PrivacyRegistry(path)
        try:
            blocks, datasets = registry.prune(store.has)
        finally:
            registry.close()
        if blocks or datasets:
            log.info("private index: %d block row(s), %d dataset row(s) of deleted content dropped", blocks, datasets)

    return prune
