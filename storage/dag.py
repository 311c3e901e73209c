"""Walking DAGs: which CIDs a block links to, whatever its codec."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from storage import dagcbor, dagpb
from storage.cid import CID, DAG_CBOR, DAG_PB, RAW


def links_of(cid: CID, data: bytes) -> list[CID]:
    """Child CIDs of a block; raw blocks and unknown codecs have none we can see."""
    codec = cid.codec
    if codec == DAG_PB:
        return [link.hash for link in dagpb.decode(data).links]
    if codec == DAG_CBOR:
        return list(dagcbor.iter_links(dagcbor.decode(data)))
    return []


def has_links(cid: CID) -> bool:
    """Whether a block's codec can carry links (so it must be read to walk past it)."""
    return cid.codec in (DAG_PB, DAG_CBOR)


def walk(root: CID, load: Callable[[CID], bytes | None]) -> Iterator[tuple[CID, bytes | None]]:
    """Depth-first, pre-order, each block once; ``load`` returns None for a missing block.

    ``load`` decides what "present" costs: CAR export loads every block's bytes, while
    the block store's reachability check answers from its size index for raw blocks.
    """
    seen: set[CID] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        data = load(cid)
        yield cid, data
        if data is not None and has_links(cid):
            stack.extend(reversed(links_of(cid, data)))


__all__ = ["RAW", "has_links", "links_of", "walk"]
