"""Field checks shared by the private-data records: every value a peer or client sent, typed and bounded."""

from __future__ import annotations

import re
from typing import Any

from storage.cid import CID
from storage.errors import InvalidCIDError
from storage.peerid import public_key_from_peer_id
from storage.privacy.errors import PrivacyError, Refusal

MAX_LIST = 256  # holders, agents, clients, regions: each at most this many
MAX_INT = (1 << 63) - 1
_REGION = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def bad(detail: str) -> PrivacyError:
    return PrivacyError(Refusal.MALFORMED, detail)


def exact_fields(record: dict[str, Any], required: frozenset[str], optional: frozenset[str] = frozenset()) -> None:
    missing, unknown = required - set(record), set(record) - required - optional
    if missing or unknown:
        raise bad(f"missing field(s) {sorted(missing)}, unknown field(s) {sorted(unknown)}")


def integer(record: dict[str, Any], name: str, low: int = 0, high: int = MAX_INT) -> int:
    value = record.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad(f"{name} must be an integer in [{low}, {high}]")
    return value


def flag(record: dict[str, Any], name: str) -> bool:
    value = record.get(name)
    if not isinstance(value, bool):
        raise bad(f"{name} must be true or false")
    return value


def cid(record: dict[str, Any], name: str) -> CID:
    value = record.get(name)
    if not isinstance(value, CID):
        raise bad(f"{name} must be a CID")
    return value


def key(value: Any, name: str) -> str:
    """An Ed25519 key in peer-ID form (nodes, owners and clients are all named this way)."""
    if not isinstance(value, str) or len(value) > 128:
        raise bad(f"{name} must be an Ed25519 key in peer-ID form")
    try:
        public_key_from_peer_id(value)
    except InvalidCIDError:
        raise bad(f"{name} {value[:60]!r} is not an Ed25519 key in peer-ID form") from None
    return value


def keys(record: dict[str, Any], name: str) -> tuple[str, ...]:
    return tuple(key(item, f"{name}[]") for item in _list(record, name))


def cids(record: dict[str, Any], name: str) -> tuple[CID, ...]:
    items = _list(record, name)
    if not all(isinstance(item, CID) for item in items):
        raise bad(f"{name} must be a list of CIDs")
    return tuple(items)


def regions(record: dict[str, Any], name: str) -> tuple[str, ...]:
    items = _list(record, name)
    if not all(isinstance(item, str) and _REGION.fullmatch(item) for item in items):
        raise bad(f"{name} must be a list of region names (lowercase letters, digits, '.', '_', '-')")
    return tuple(items)


def _list(record: dict[str, Any], name: str) -> list[Any]:
    value = record.get(name, [])
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise bad(f"{name} must be a list of at most {MAX_LIST} items")
    if len(set(map(repr, value))) != len(value):
        raise bad(f"{name} lists an item twice")
    return value
