"""Typed refusals of private-data records: a reason a program can branch on, a detail a user can read."""

from __future__ import annotations

from enum import StrEnum

from storage.errors import StorageError


class Refusal(StrEnum):
    """Why a policy, revocation, grant chain or job access proof was refused."""

    MALFORMED = "malformed"  # not the record's schema (types, ranges, sizes)
    FORGED = "forged"  # a signature does not verify for the key the record names
    EXPIRED = "expired"
    STALE = "stale"  # an older version than the one already known
    WRONG_OWNER = "wrong_owner"  # signed by a key that does not own the dataset
    WRONG_DATASET = "wrong_dataset"
    BROKEN_CHAIN = "broken_chain"  # a link not issued by the previous link's audience, or not naming it
    WIDENED = "widened"  # a link grants more than the one it derives from
    NOT_GRANTED = "not_granted"  # valid records, but they do not cover this client or agent
    REVOKED = "revoked"
    PUBLIC_HERE = "public_here"  # the content is already held here as public: a policy cannot recall it


class PrivacyError(StorageError, ValueError):
    """A private-data record refused for ``reason`` (a :class:`Refusal`)."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason, self.detail = reason, detail
