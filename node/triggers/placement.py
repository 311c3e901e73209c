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
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from node.triggers.model import TriggerError
from storage.streamentry import is_stream_id

MAX_REGIONS = 16
MAX_REGION_LEN = 64
MAX_CANDIDATES = 8  # holders a stored placement lists (the chosen one first; the rest are counted)
MAX_REASON = 300
_PEER = re.compile(r"[1-9A-HJ-NP-Za-km-z]{1,128}")


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
    regions: tuple[str, ...]  # the effective regions: those asked for, within the stream's policy
    head: int  # the newest head any holder announced
    chosen: Holder
    considered: tuple[Considered, ...]
    policy_regions: tuple[str, ...] = ()  # the regions the stream's writer-signed policy allows (empty: any)
    placed_by: str = ""  # the node that chose (the one the deploy request went to)
    omitted: int = 0  # holders considered but not listed (past MAX_CANDIDATES)

    @property
    def reason(self) -> str:
        return next(c.reason for c in self.considered if c.verdict is Verdict.CHOSEN)

    def by(self, peer: str, policy_regions: Sequence[str]) -> Placement:
        return replace(self, placed_by=peer, policy_regions=tuple(policy_regions))

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
        return replace(self, chosen=chosen, considered=considered)

    def json(self) -> dict[str, Any]:
        """The explanation as the deploy answer shows it and the trigger's record keeps it: the chosen
        holder first, at most MAX_CANDIDATES holders (``omitted`` counts the rest), reasons bounded."""
        listed = self.considered[:MAX_CANDIDATES]
        return {"stream": self.stream, "regions": list(self.regions), "head_seq": self.head,
                "peer_id": self.chosen.peer, "reason": self.reason[:MAX_REASON],
                "candidates": [c.json() for c in listed], "omitted": self.omitted + len(self.considered) - len(listed),
                "policy_regions": list(self.policy_regions), "placed_by": self.placed_by}  # fmt: skip

    @classmethod
    def from_json(cls, value: Any) -> Placement:
        """A placement as a peer sent it with a deploy (the node that placed the trigger): checked field
        by field (types, sizes, counts, exactly one chosen holder, the one named); TriggerError if not."""
        if not isinstance(value, dict) or set(value) != _PLACEMENT_KEYS:
            raise _bad("a placement is an object of exactly " + ", ".join(sorted(_PLACEMENT_KEYS)))
        stream, head, omitted = value["stream"], value["head_seq"], value["omitted"]
        if not isinstance(stream, str) or not is_stream_id(stream):
            raise _bad("placement.stream is a stream id")
        if not _count(head) or not _count(omitted):
            raise _bad("placement.head_seq and omitted are non-negative integers")
        regions = _labels(value["regions"], "placement.regions")
        policy_regions = _labels(value["policy_regions"], "placement.policy_regions")
        placed_by = value["placed_by"]
        if not isinstance(placed_by, str) or (placed_by and not _PEER.fullmatch(placed_by)):
            raise _bad("placement.placed_by is a peer ID")
        rows = value["candidates"]
        if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_CANDIDATES:
            raise _bad(f"placement.candidates lists 1 to {MAX_CANDIDATES} holders")
        considered = tuple(_considered(row) for row in rows)
        chosen = [c for c in considered if c.verdict is Verdict.CHOSEN]
        if len(chosen) != 1 or chosen[0].holder.peer != value["peer_id"]:
            raise _bad("placement.candidates has exactly one chosen holder, the one peer_id names")
        if len({c.holder.peer for c in considered}) != len(considered):
            raise _bad("placement.candidates names a holder twice")
        return cls(stream, regions, head, chosen[0].holder, considered, policy_regions, placed_by, omitted)


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


_PLACEMENT_KEYS = frozenset({"stream", "regions", "head_seq", "peer_id", "reason", "candidates", "omitted",
                             "policy_regions", "placed_by"})  # fmt: skip
_CANDIDATE_KEYS = frozenset({"peer_id", "region", "seq", "role", "here", "verdict", "reason"})


def _bad(detail: str) -> TriggerError:
    return TriggerError("bad_placement", detail)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


def _labels(value: Any, name: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or len(value) > MAX_REGIONS
        or not all(isinstance(r, str) and 0 < len(r) <= MAX_REGION_LEN for r in value)
    ):
        raise _bad(f"{name} is a list of at most {MAX_REGIONS} region labels")
    return tuple(value)


def _considered(row: Any) -> Considered:
    if not isinstance(row, dict) or set(row) != _CANDIDATE_KEYS:
        raise _bad("a placement candidate is an object of exactly " + ", ".join(sorted(_CANDIDATE_KEYS)))
    peer, region, seq, reason = row["peer_id"], row["region"], row["seq"], row["reason"]
    if not isinstance(peer, str) or not _PEER.fullmatch(peer):
        raise _bad("a placement candidate's peer_id is a peer ID")
    if region is not None and (not isinstance(region, str) or len(region) > MAX_REGION_LEN):
        raise _bad(f"a placement candidate's region is a label of at most {MAX_REGION_LEN} characters, or null")
    if not _count(seq) or not isinstance(row["here"], bool):
        raise _bad("a placement candidate's seq is a non-negative integer and here a boolean")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise _bad(f"a placement candidate's reason is at most {MAX_REASON} characters")
    try:
        role, verdict = Role(row["role"]), Verdict(row["verdict"])
    except (ValueError, TypeError):
        raise _bad("a candidate's role is origin|replica|holder, its verdict chosen|behind|outside_regions") from None
    return Considered(Holder(peer, region, seq, role, row["here"]), verdict, reason)


def effective_regions(asked: Sequence[str], policy_regions: Sequence[str], stream: str) -> tuple[str, ...]:
    """The regions a stream trigger may run in: those asked for, inside the stream's writer-signed
    policy (none asked: the policy's). Asking for a region the policy does not allow is refused."""
    if not policy_regions:
        return tuple(asked)
    if not asked:
        return tuple(policy_regions)
    forbidden = [r for r in asked if r not in policy_regions]
    if forbidden:
        raise TriggerError(
            "region_forbidden_by_policy",
            f"stream {stream}'s writer allows its entries only in region(s) {', '.join(policy_regions)}; "
            f"{', '.join(forbidden)} is not one of them"[:1000],
            409,
        )
    return tuple(asked)


def takeover_refusal(own_region: str, regions: Sequence[str], policy_regions: Sequence[str]) -> str | None:
    """Why a standby in ``own_region`` may not take a trigger over (None: it may): outside the
    trigger's effective ``regions`` or outside the stream's policy as this node holds it now."""
    if regions and own_region not in regions:
        return f"this node is in region {own_region}, not one of the trigger's regions ({', '.join(regions)})"
    if policy_regions and own_region not in policy_regions:
        return f"this node is in region {own_region}, and the stream's policy allows only {', '.join(policy_regions)}"
    return None
