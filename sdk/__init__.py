"""The mycelnet SDK: ``from sdk import Client, SyncClient``.

Store and fetch content by CID, deploy agents, run jobs next to their data, and verify
everything that comes back (content, receipts, on-chain settlement) without trusting a node.
Importing it needs only the base install; paying and settlement checks need ``mycelnet[pay]``.
"""

from sdk.client import Client, Job
from sdk.errors import (
    AgentNotFoundError,
    JobFailedError,
    MissingExtraError,
    MissingInputError,
    MissingPackageError,
    NodeApiError,
    NodeUnreachableError,
    PaymentRefusedError,
    SdkError,
    UsageError,
    VerificationError,
)
from sdk.keys import Keypair, PolicyTerms
from sdk.streams import Stream, StreamReader
from sdk.sync import SyncClient, SyncJob
from sdk.triggers import Invocation, TriggerReceipt, Triggers
from sdk.verify import (
    SettlementCheck,
    bytes_match,
    path_matches,
    verify_bytes,
    verify_path,
    verify_receipt,
    verify_settlement,
)
from sdk.verify_privacy import PrivacyCheck, verify_privacy
from sdk.wallet import Wallet

__all__ = [
    "AgentNotFoundError",
    "Client",
    "Invocation",
    "Job",
    "JobFailedError",
    "MissingExtraError",
    "Keypair",
    "MissingInputError",
    "MissingPackageError",
    "NodeApiError",
    "NodeUnreachableError",
    "PaymentRefusedError",
    "PolicyTerms",
    "SdkError",
    "SettlementCheck",
    "Stream",
    "StreamReader",
    "SyncClient",
    "SyncJob",
    "TriggerReceipt",
    "Triggers",
    "UsageError",
    "VerificationError",
    "Wallet",
    "bytes_match",
    "path_matches",
    "verify_bytes",
    "verify_path",
    "verify_receipt",
    "verify_settlement",
    "PrivacyCheck",
    "verify_privacy",
]
