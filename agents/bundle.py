"""Agent bundles: a directory imported as a UnixFS DAG plus a dag-cbor manifest that links it.

The manifest's CID is the agent's id. Packing is deterministic (UnixFS CIDs, canonical
DAG-CBOR, hidden files left out as ``ipfs add`` does), so the same directory gives the
same agent id on every machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agents.errors import AgentNotFound, BadAgentRef, ManifestError
from agents.manifest import Manifest, load
from storage import dagcbor
from storage.cid import CID
from storage.errors import InvalidCIDError, StorageError
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

    from storage.files import add_path  # the block store's module: a node's, not the SDK's (which packs nothing)

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


# -- agents by name ----------------------------------------------------------------------
# A deploy pins the manifest under "agent NAME VERSION"; the manifest itself holds both, so
# the pins are the deploy records: no second index that could disagree with the store.

DAG_CBOR = 0x71
_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,63})(@(?P<version>[0-9A-Za-z.+-]{1,64}))?$")


def stored_agents(store: BlockStore) -> list[Bundle]:
    """Every pinned root that opens as an agent bundle (walks the pins: call off the event loop)."""
    bundles = []
    for pin in store.pins():
        if pin.cid.codec != DAG_CBOR:
            continue
        try:
            bundles.append(open_bundle(store, pin.cid))
        except (ManifestError, StorageError):
            continue
    return bundles


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """Order versions like semver: numbers numerically, a pre-release before its release."""
    core, _, rest = version.split("+", 1)[0].partition("-")  # build metadata does not order
    numbers = tuple(int(part) if part.isdigit() else 0 for part in core.split("."))
    return numbers, 0 if rest else 1, rest


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``name`` or ``name@version`` -> (name, version or None); BadAgentRef for anything else."""
    match = _REF.match(ref)
    if match is None:
        raise BadAgentRef(f"{ref!r} is neither an agent id (a CID) nor an agent name (NAME or NAME@VERSION)")
    return match["name"], match["version"]


def as_cid(ref: str) -> CID | None:
    """``ref`` as a CID, or None when it is not one (then it may be an agent name)."""
    try:
        return CID.parse(ref)
    except (InvalidCIDError, ValueError):
        return None


def resolve(store: BlockStore, ref: str) -> Bundle:
    """The bundle ``ref`` names in ``store``: an agent id, ``name@version``, or ``name`` (newest version).

    AgentNotFound, with the command that would deploy it, when the store holds no such agent.
    """
    cid = as_cid(ref)
    if cid is not None:
        return open_bundle(store, cid)
    name, version = parse_ref(ref)
    matches = [b for b in stored_agents(store) if b.manifest.name == name]
    if version is not None:
        matches = [b for b in matches if b.manifest.version == version]
    if not matches:
        same_name = {b.manifest.version for b in stored_agents(store) if b.manifest.name == name}
        versions = sorted(same_name, key=version_key)
        held = f"; it holds {name} {', '.join(versions)}" if versions else ""
        raise AgentNotFound(f"no agent named {ref} on this node{held} (deploy it with 'mycel agent deploy DIR')")
    return max(matches, key=lambda b: (version_key(b.manifest.version), str(b.agent_id)))
