"""Agent bundles: a directory imported as a UnixFS DAG plus a dag-cbor manifest that links it.

The manifest's CID is the agent's id. Packing is deterministic (UnixFS CIDs, canonical
DAG-CBOR, hidden files left out as ``ipfs add`` does), so the same directory gives the
same agent id on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agents.errors import ManifestError
from agents.manifest import Manifest, load
from storage import dagcbor
from storage.cid import CID
from storage.unixfs.importer import NullSink, import_path

if TYPE_CHECKING:  # a store (LMDB) is a node's: agent_id_of, which the SDK uses, needs none
    from storage.blockstore import BlockStore


@dataclass(frozen=True)
class Bundle:
    agent_id: CID
    code: CID
    manifest: Manifest


def _record(manifest: Manifest, code: CID) -> dict[str, object]:
    return {**manifest.to_record(), "code": code}


def agent_id_of(directory: Path) -> CID:
    """The agent id ``pack`` would give, computed without storing anything."""
    manifest = load(directory)
    code = import_path(directory, NullSink()).cid
    return dagcbor.encode_with_cid(_record(manifest, code))[0]


def pack(directory: Path, store: BlockStore) -> Bundle:
    """Validate ``directory``, store its code DAG and manifest, pin the manifest."""
    from storage.files import add_path

    manifest = load(directory)
    code = add_path(store, directory, pin=False).cid
    agent_id, block = dagcbor.encode_with_cid(_record(manifest, code))
    store.put(agent_id, block)
    store.pin(agent_id, f"agent {manifest.name} {manifest.version}")
    return Bundle(agent_id, code, manifest)


def open_bundle(store: BlockStore, agent_id: CID) -> Bundle:
    record = dagcbor.decode(store.get(agent_id))
    if not isinstance(record, dict) or not isinstance(record.get("code"), CID):
        raise ManifestError(f"{agent_id} is not an agent manifest (no code link)")
    return Bundle(agent_id, record["code"], Manifest.from_record(record))
