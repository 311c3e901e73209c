"""Typed agent errors, each with a message an agent developer or operator can act on."""

from __future__ import annotations


class AgentError(Exception):
    """Base class for agent bundle, runtime and receipt errors."""


class ManifestError(AgentError, ValueError):
    """mycel-agent.toml is missing, malformed, or has a wrong field."""


class RuntimeUnavailable(AgentError):
    """The runtime the agent asks for cannot run on this node."""


class ReceiptError(AgentError, ValueError):
    """A receipt is malformed or its signature does not verify."""
