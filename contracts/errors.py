"""Typed errors of the settlement layer, each with a message a user can act on."""

from __future__ import annotations


class ChainError(Exception):
    """The chain could not be reached, refused a transaction, or is not set up."""


class AuthorizationError(ChainError):
    """A payment authorisation is malformed, expired, or not signed by its client."""
