"""Typed agent errors, each with a message an agent developer or operator can act on."""

from __future__ import annotations


class AgentError(Exception):
    """Base class for agent bundle, runtime and receipt errors."""


class ManifestError(AgentError, ValueError):
    """mycel-agent.toml is missing, malformed, or has a wrong field."""


class AgentNotFound(AgentError, LookupError):
    """No agent with that id or name is stored here; the message says how to deploy one."""


class BadAgentRef(AgentError, ValueError):
    """A string that is neither an agent id (a CID) nor an agent name (NAME or NAME@VERSION)."""


class RuntimeUnavailable(AgentError):
    """The runtime the agent asks for cannot run on this node."""


class MissingPackages(RuntimeUnavailable):
    """The agent's manifest requires python packages this node's agent environment lacks."""


class ReceiptError(AgentError, ValueError):
    """A receipt is malformed or its signature does not verify."""


class InvalidModule(AgentError, ValueError):
    """A wasm module that does not validate or compile: the agent's fault."""


class CompileTimeout(AgentError):
    """Compiling a wasm module took longer than the run's wall-clock limit allows."""


class CompileCancelled(AgentError):
    """The job was cancelled while its wasm module was being compiled."""


class CompilerFailed(AgentError):
    """The wasm compiler process died without an answer (a crash, or killed by its own limits)."""
