"""What the SDK raises: one base class, with messages a user can act on."""

from __future__ import annotations


class SdkError(Exception):
    """Base class of every error the SDK raises."""


class NodeApiError(SdkError):
    """The node refused a request; ``error`` is its machine-readable code."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{detail} (HTTP {status}, {error})")
        self.status, self.error, self.detail = status, error, detail


class NodeUnreachableError(SdkError):
    """No node answered at the URL given."""


class VerificationError(SdkError):
    """Content, a receipt or a settlement did not check out; the message says which part."""


class JobFailedError(SdkError):
    """A job ended failed or cancelled; the message carries the node's reason."""


class PaymentRefusedError(SdkError):
    """An executor refused the payment for its delivered work; the message carries its reason."""


class UsageError(SdkError):
    """The call cannot be done as asked (a destination that already holds files, a directory CID
    given to ``cat``); nothing was written and the node is not at fault."""


class MissingExtraError(SdkError):
    """This install lacks the optional part a call needs; the message names the pip extra to add.

    ``extra`` is ``"pay"`` (the chain: paid jobs, wallets, settlement checks) or ``"node"``
    (running a node, the local block store, local agent runs).
    """

    def __init__(self, extra: str, module: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs mycelnet[{extra}] ({module} is not installed): "
                         f"pip install 'mycelnet[{extra}]'")  # fmt: skip
        self.extra, self.module = extra, module


class AgentNotFoundError(SdkError):
    """No agent of that id or name on the node; the message says how to deploy it."""


class MissingInputError(SdkError):
    """An input CID that no node holds: the job would wait for blocks nobody can send."""


class MissingPackageError(SdkError):
    """The agent requires python packages that no node known to the API offers."""
