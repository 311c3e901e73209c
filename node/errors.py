"""Typed node errors; the CLI prints them as one line."""

from __future__ import annotations


class NodeError(Exception):
    """Base class for errors a node operator can act on."""


class ConfigError(NodeError):
    """The configuration file, an environment variable or a flag is invalid."""


class IdentityError(NodeError):
    """The node key file is missing, malformed or too widely readable."""


class NetworkError(NodeError):
    """A peer could not be reached, or answered with something invalid."""


class ProtocolNotSupported(NetworkError):
    """The peer is reachable but does not speak the protocol asked for (multistream answered "na")."""
