"""Where a stream trigger runs when it asks for regions: the freshest holder of its stream inside them.

A stream trigger runs where its stream's bytes are (the origin or a replica), so its placement is
a choice among the stream's holders: this node, if it holds the stream, and every alive peer whose
announcement carries a head of it (:meth:`node.streams.service.StreamService.holders`). With
``regions`` set, only a holder announcing one of them may run it, so the stream's entries never
reach a node outside them for this trigger; among those the one nearest the head is chosen. The
origin is never behind a replica of its own stream, so an origin inside the regions wins (on a tie,
a holder known to be the origin, then this node, then the lowest peer ID). No holder inside the
regions: :class:`PlacementRefused`, naming every holder and why it was passed over.

A region is the label a node announces for itself (``node.region``): self-declared, as the
privacy policies' ``regions_are_self_declared`` says of theirs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from node.triggers.model import TriggerError

MAX_REGIONS = 16
MAX_REGION_LEN = 64


class Role(enum.Enum):
    ORIGIN = "origin"
    REPLICA = "replica"
    HOLDER = "holder"  # not known: announced heads carry no role (node.streams.service.StreamService.heads)


class Verdict(enum.Enum):
    CHOSEN = "chosen"
    OUTSIDE_REGIONS = "outside_regions"  # it announces no region asked for
    BEHIND = "behind"  # inside the regions, but another holder there is nearer the head


@dataclass(frozen=True)
class Holder:
    peer: str
    region: str | None  # as it announced it (None: not known)
    seq: int  # the head it holds
    role: Role = Role.HOLDER  # known for this node (its store), and for the chosen peer once it deployed
    here: bool = False  # this node

    @property
    def origin(self) -> bool:
        return self.role is Role.ORIGIN


@dataclass(frozen=True)
class Considered:
    holder: Holder
    verdict: Verdict
    reason: str

    def json(self) -> dict[str, Any]:
        holder = self.holder
        return {"peer_id": holder.peer, "region": holder.region, "seq": holder.seq, "role": holder.role.value,
                "here": holder.here, "verdict": self.verdict.value, "reason": self.reason}  # fmt: skip


@dataclass(frozen=True)
class Placement:
    """The chosen holder and every holder considered, with its verdict and reason."""

    stream: str
    regions: tuple[str, ...]
    head: int  # the newest head any holder announced
    chosen: Holder
    considered: tuple[Considered, ...]

    @property
    def reason(self) -> str:
        return next(c.reason for c in self.considered if c.verdict is Verdict.CHOSEN)

    def confirmed(self, role: Role) -> Placement:
        """The placement with the chosen holder's role as it said itself when it deployed the trigger."""
        chosen = replace(self.chosen, role=role)
        found = [chosen if c.holder is self.chosen else c.holder for c in self.considered]
        considered = tuple(
            Considered(chosen, c.verdict, _chosen(chosen, self.head, self.regions, found))
            if c.holder is self.chosen
            else c
            for c in self.considered
        )
        return Placement(self.stream, self.regions, self.head, chosen, considered)

    def json(self) -> dict[str, Any]:
        return {"stream": self.stream, "regions": list(self.regions), "head_seq": self.head,
                "peer_id": self.chosen.peer, "reason": self.reason,
                "candidates": [c.json() for c in self.considered]}  # fmt: skip


class PlacementRefused(TriggerError):
    """No holder of the stream inside the regions asked for (``considered`` says what there was)."""

    def __init__(self, stream: str, regions: Sequence[str], considered: Sequence[Considered]) -> None:
        if considered:
            seen = ", ".join(f"{c.holder.peer} in {c.holder.region or 'an unknown region'}" for c in considered)
            detail = (
                f"no node in region(s) {', '.join(regions)} holds stream {stream} (it is held by {seen}): "
                "subscribe a node in one of them to it (POST /v1/streams/{id}/subscribe), then deploy again"
            )
        else:
            detail = f"no node this one knows of holds stream {stream}"
        super().__init__("no_holder_in_regions", detail[:1000], 409)
        self.stream, self.regions, self.considered = stream, tuple(regions), tuple(considered)


def parse_regions(value: Any) -> tuple[str, ...]:
    """The ``regions`` of a deploy request: a list of region labels (absent or empty: any region)."""
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > MAX_REGIONS
        or not all(isinstance(r, str) and 0 < len(r) <= MAX_REGION_LEN for r in value)
    ):
        raise TriggerError(
            "bad_regions", f"regions is a list of at most {MAX_REGIONS} region labels ({MAX_REGION_LEN} chars each)"
        )
    return tuple(dict.fromkeys(value))


def choose(stream: str, holders: Iterable[Holder], regions: Sequence[str]) -> Placement:
    """The holder inside ``regions`` (any, if empty) nearest the head; PlacementRefused if none."""
    by_peer: dict[str, Holder] = {}
    for holder in holders:  # one row per peer: this node's own view of itself wins
        held = by_peer.get(holder.peer)
        if held is None or holder.here or (not held.here and holder.seq > held.seq):
            by_peer[holder.peer] = holder
    found = list(by_peer.values())
    allowed = [h for h in found if not regions or h.region in regions]
    if not allowed:
        outside = [Considered(h, Verdict.OUTSIDE_REGIONS, _outside(h, regions)) for h in found]
        raise PlacementRefused(stream, regions, outside)
    head = max(h.seq for h in found)
    best = min(allowed, key=lambda h: (-h.seq, not h.origin, not h.here, h.peer))
    considered = []
    for holder in sorted(found, key=lambda h: (h is not best, -h.seq, h.peer)):
        if holder is best:
            considered.append(Considered(holder, Verdict.CHOSEN, _chosen(holder, head, regions, found)))
        elif holder in allowed:
            considered.append(Considered(holder, Verdict.BEHIND, _behind(holder, best)))
        else:
            considered.append(Considered(holder, Verdict.OUTSIDE_REGIONS, _outside(holder, regions)))
    return Placement(stream, tuple(regions), head, best, tuple(considered))


def _outside(holder: Holder, regions: Sequence[str]) -> str:
    where = f"region {holder.region}" if holder.region is not None else "no known region"
    return f"holds seq {holder.seq} but announces {where}, not one of {', '.join(regions)}"


def _behind(holder: Holder, best: Holder) -> str:
    if holder.seq < best.seq:
        return f"holds seq {holder.seq}, behind {best.peer} at seq {best.seq}"
    return f"holds seq {holder.seq} too; {best.peer} is preferred (origin, this node, then lowest peer ID)"


def _chosen(holder: Holder, head: int, regions: Sequence[str], found: Sequence[Holder]) -> str:
    if holder.origin:
        role = "the stream's origin"
    elif holder.role is Role.REPLICA or any(h.origin or h.seq > holder.seq for h in found if h is not holder):
        role = "a replica of the stream"
    else:
        role = "a holder of the stream"
    where = f" in region {holder.region}" if regions else ""
    fresh = "at the head" if holder.seq >= head else f"at seq {holder.seq}, the nearest to head {head} in the regions"
    text = f"{role}{where}, {fresh} (seq {holder.seq})"
    if regions and any(h.region not in regions and h.seq > holder.seq for h in found):
        text += "; the fresher holders are outside the regions asked for"
    return text
