"""What this node holds privately: datasets with their owner's policy, and a private-block index.

Two LMDB tables beside the block store:

- ``datasets``: dataset root (text) -> ``{"owner", "policy" (envelope bytes or absent),
  "version", "revoked"}``. A dataset uploaded as private is here, locked (no policy yet),
  before its upload answers; the owner's signed policy then opens it to what it names.
- ``blocks``: block CID (text) -> the private datasets whose DAG contains it. Written
  when a private dataset is stored or fetched, so the serving gate answers with one
  lookup, never a walk. A block listed here is private even if public content also
  contains it ("private wins"): such a block is served only as one of its datasets'
  policies allows, so a public DAG that shares it must fetch it from another node.

Lookups are single LMDB reads; indexing walks a DAG and runs in the caller's thread,
which the callers keep off the event loop. After a GC, :meth:`PrivacyRegistry.prune`
drops the rows of blocks the store no longer holds (and of datasets whose root is gone).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.privacy.stats import PrivacyStats
from storage.cid import CID
from storage.privacy.errors import PrivacyError, Refusal
from storage.privacy.policy import SignedPolicy, SignedRevocation, parse
from storage.records import RecordTables, Writer

MAX_DATASETS_PER_BLOCK = 64  # a block shared by more private datasets than this stays in the first 64
MAX_LISTED = 512  # datasets one listing returns (the dashboard's table)


@dataclass(frozen=True)
class DatasetState:
    dataset: CID
    owner: str
    version: int  # of the newest policy or revocation seen
    policy: SignedPolicy | None  # None: locked (no policy yet, revoked, or expired)
    state: str  # "locked", "active", "revoked" or "expired"


class PrivacyRegistry:
    def __init__(self, path: Path) -> None:
        self._tables = RecordTables(path, ("datasets", "blocks"))
        self._parsed: dict[bytes, SignedPolicy] = {}  # envelope bytes -> checked policy (signature done once)
        # only the node process writes these tables: while it holds no private dataset, every block
        # is public and the gate answers without a read (~60 us per block saved on every serve)
        self._holds_any = self._tables.count("datasets") > 0
        self.stats = PrivacyStats()  # refusals and grant holders per dataset, since start-up
        self.locks = 0  # datasets locked by this process: a content summary built before one is rebuilt

    def close(self) -> None:
        self._tables.close()

    # -- datasets -----------------------------------------------------------------------
    def lock(self, dataset: CID, owner: str, blocks: Iterable[CID]) -> None:
        """Record ``dataset`` as private to ``owner`` with no policy yet, and index its blocks."""
        listed = list(blocks)

        def change(w: Writer) -> None:
            existing = w.get("datasets", str(dataset))
            if existing is None:
                w.put("datasets", str(dataset), {"owner": owner, "version": 0, "revoked": 0})
            elif existing["owner"] != owner:
                raise PrivacyError(Refusal.WRONG_OWNER, f"{dataset} is already private to another owner")
            _index(w, dataset, listed)

        self._holds_any = True  # before the write: a concurrent serve must not miss it
        self._tables.write(change)
        self.locks += 1

    def index(self, dataset: CID, blocks: Iterable[CID]) -> None:
        """Add blocks (fetched replicas, withheld results) to a known private dataset's index."""
        listed = list(blocks)
        self._tables.write(lambda w: _index(w, dataset, listed))

    def apply(self, data: bytes, now: float | None = None) -> SignedPolicy | SignedRevocation:
        """Take a signed policy or revocation: the owner's, newer than what is known, else refused."""
        record = parse(data, time.time() if now is None else now)
        target = record.policy if isinstance(record, SignedPolicy) else record.revocation
        key = str(target.dataset)

        def change(w: Writer) -> None:  # read and write in one transaction: two versions cannot race
            current = w.get("datasets", key)
            if current is not None and current["owner"] != target.owner:
                raise PrivacyError(
                    Refusal.WRONG_OWNER, f"{target.dataset} is private to {current['owner']}, not to {target.owner}"
                )
            version = 0 if current is None else int(current["version"])
            entry: dict[str, Any] = {"owner": target.owner, "version": target.version}
            if isinstance(record, SignedPolicy):
                if target.version <= version:
                    raise PrivacyError(
                        Refusal.STALE, f"policy version {target.version} is not newer than version {version} held here"
                    )
                entry.update(revoked=0, policy=record.data)
            else:
                if target.version < version:
                    raise PrivacyError(
                        Refusal.STALE, f"revocation of version {target.version} predates version {version}"
                    )
                entry.update(revoked=target.version)
            w.put("datasets", key, entry)

        self._holds_any = True
        self._tables.write(change)
        return record

    def state(self, dataset: CID, now: float | None = None) -> DatasetState | None:
        """The dataset as this node holds it privately; None when it is not a private dataset here."""
        entry = self._tables.get("datasets", str(dataset))
        if entry is None:
            return None
        owner, version = str(entry["owner"]), int(entry["version"])
        if entry.get("revoked"):
            return DatasetState(dataset, owner, version, None, "revoked")
        raw = entry.get("policy")
        if not isinstance(raw, bytes):
            return DatasetState(dataset, owner, version, None, "locked")
        policy = self._policy(raw)
        if policy.policy.expires <= (time.time() if now is None else now):
            return DatasetState(dataset, owner, version, None, "expired")
        return DatasetState(dataset, owner, version, policy, "active")

    def datasets(self, limit: int = MAX_LISTED) -> list[DatasetState]:
        """The private datasets held here (at most ``limit``), as :meth:`state` gives each."""
        found: list[DatasetState] = []
        for key, _ in self._tables.newest_first("datasets"):
            state = self.state(CID.parse(key))
            if state is not None:
                found.append(state)
            if len(found) >= limit:
                break
        return found

    def prune(self, held: Callable[[CID], bool]) -> tuple[int, int]:
        """After a GC: drop index rows of blocks the store no longer ``held``, and the rows of
        datasets whose root is gone; returns (block rows, dataset rows) removed.

        A revoked dataset keeps its row (owner and revoked version, a few bytes) even when its
        blocks are gone: a replayed older policy must not reopen it should the data come back.
        Call it off the event loop: it reads every row.
        """
        gone_blocks = [key for key, _ in self._tables.newest_first("blocks") if not held(CID.parse(key))]
        gone_datasets = [
            key
            for key, entry in self._tables.newest_first("datasets")
            if not entry.get("revoked") and not held(CID.parse(key))
        ]

        def change(w: Writer) -> None:
            for key in gone_blocks:
                w.delete("blocks", key)
            for key in gone_datasets:
                w.delete("datasets", key)

        if gone_blocks or gone_datasets:
            self._tables.write(change)
        return len(gone_blocks), len(gone_datasets)

    def _policy(self, raw: bytes) -> SignedPolicy:
        cached = self._parsed.get(raw)
        if cached is None:
            parsed = parse(raw, 0)  # checked when applied; expiry is judged by the caller's clock
            assert isinstance(parsed, SignedPolicy)
            if len(self._parsed) > 1024:
                self._parsed.clear()
            cached = self._parsed[raw] = parsed
        return cached

    # -- blocks -------------------------------------------------------------------------
    def datasets_of(self, block: CID) -> list[CID]:
        """The private datasets containing ``block`` (empty: a public block)."""
        if not self._holds_any:
            return []
        listed = self._tables.get("blocks", str(block))
        if listed is None:
            return [block] if self._tables.get("datasets", str(block)) is not None else []
        return [CID.parse(text) for text in listed]

    def is_private(self, cid: CID) -> bool:
        return bool(self.datasets_of(cid))


def _index(w: Writer, dataset: CID, blocks: list[CID]) -> None:
    name = str(dataset)
    for block in [dataset, *blocks]:
        key = str(block)
        current: list[str] = list(w.get("blocks", key) or [])
        if name not in current and len(current) < MAX_DATASETS_PER_BLOCK:
            w.put("blocks", key, [*current, name])
