"""Offline verification: content by CID, receipts by signature, settlement by the chain's record.

Nothing here trusts a node: content is re-hashed as IPFS computes it, a receipt is checked
against the public key inside the peer ID it names, and a settlement is read from the
ledger contract's own events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agents import receipt as receipts
from agents.errors import ReceiptError
from contracts.binding import binding_is_valid
from contracts.ledger import Ledger, Settlement
from contracts.payment import chain_job_id
from sdk.errors import VerificationError
from storage.cid import CID, RAW
from storage.errors import StorageError
from storage.unixfs.importer import ImportOptions, NullSink, import_bytes, import_path

# The layouts CIDs are made with: kubo's defaults and the IPIP-499 (1 MiB chunks) profile.
_PROFILES = ((256 << 10, 174), (1 << 20, 1024))


def _as_cid(cid: CID | str) -> CID:
    try:
        return cid if isinstance(cid, CID) else CID.parse(cid)
    except StorageError as exc:
        raise VerificationError(f"{cid!r} is not a CID: {exc}") from None


def _options(cid: CID, chunk_size: int, max_links: int, hidden: bool = False) -> ImportOptions:
    return ImportOptions(cid_version=cid.version, chunk_size=chunk_size, max_links=max_links, include_hidden=hidden)


def verify_bytes(cid: CID | str, data: bytes) -> bool:
    """True when ``data`` is exactly the content ``cid`` names (a raw block or a UnixFS file)."""
    expected = _as_cid(cid)
    if expected.codec == RAW and CID.for_block(data, RAW) == expected:
        return True
    return any(
        import_bytes(data, NullSink(), _options(expected, chunk, links)).cid == expected for chunk, links in _PROFILES
    )


def verify_path(cid: CID | str, path: str | os.PathLike[str]) -> bool:
    """True when the file or directory at ``path`` is what ``cid`` names, as ``ipfs add -r`` computes it."""
    expected = _as_cid(cid)
    target = Path(path)
    if not target.exists():
        raise VerificationError(f"{target} does not exist")
    if target.is_file() and expected.codec == RAW and CID.for_block(target.read_bytes(), RAW) == expected:
        return True
    for chunk, links in _PROFILES:
        for hidden in (False, True):
            if import_path(target, NullSink(), _options(expected, chunk, links, hidden)).cid == expected:
                return True
    return False


def verify_receipt(
    signed: bytes, job_id: str | None = None, result: CID | str | None = None, node: str | None = None
) -> receipts.Receipt:
    """Check the node's Ed25519 signature and, when given, that it is for this job, result and node."""
    try:
        checked = receipts.verify(signed)
    except ReceiptError as exc:
        raise VerificationError(f"the receipt does not verify: {exc}") from None
    if job_id is not None and checked.job_id != job_id:
        raise VerificationError(f"the receipt is for job {checked.job_id}, not {job_id}")
    if result is not None and (checked.result is None or checked.result != _as_cid(result)):
        raise VerificationError(f"the receipt names result {checked.result}, not {result}")
    if node is not None and checked.node != node:
        raise VerificationError(f"the receipt was signed by {checked.node}, not {node}")
    return checked


@dataclass(frozen=True)
class SettlementCheck:
    """A job's payment as the chain recorded it, checked against its receipt."""

    job_id: str
    node_address: str
    node_peer_id: str
    amount: int
    result: str
    tx_hash: str
    block: int


def verify_settlement(
    job_id: str, rpc_url: str, contract: str, receipt: bytes | None = None, result: CID | str | None = None
) -> list[SettlementCheck]:
    """Read the ledger's Settled events for the job and check each one.

    With ``receipt`` (the signed receipt bytes), every settlement must carry that receipt's
    hash and result CID and be paid to an address the receipt's node bound to its peer ID
    (the Ed25519 binding, checked here). Raises VerificationError if anything disagrees or
    nothing was settled.
    """
    from web3 import Web3

    ledger = Ledger(Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10})), contract)
    try:
        settlements = ledger.settlements(chain_job_id(job_id))
    except Exception as exc:
        raise VerificationError(f"could not read the ledger at {rpc_url}: {exc}") from None
    if not settlements:
        raise VerificationError(f"job {job_id} has no settlement on ledger {contract}")
    checked_receipt = verify_receipt(receipt, job_id) if receipt is not None else None
    expected_result = _as_cid(result) if result is not None else (checked_receipt.result if checked_receipt else None)
    checks = []
    for settlement in settlements:
        checks.append(_check_one(ledger, job_id, settlement, receipt, checked_receipt, expected_result))
    return checks


def _check_one(
    ledger: Ledger,
    job_id: str,
    settlement: Settlement,
    receipt: bytes | None,
    checked: receipts.Receipt | None,
    expected_result: CID | None,
) -> SettlementCheck:
    try:
        result = CID.parse(settlement.result_cid)
    except StorageError:
        raise VerificationError(f"the settlement in {settlement.tx_hash} records no valid result CID") from None
    if expected_result is not None and result != expected_result:
        raise VerificationError(f"the chain records result {result} for job {job_id}, not {expected_result}")
    registration = ledger.registration(settlement.node)
    if registration is None:
        raise VerificationError(f"node address {settlement.node} never registered a peer ID")
    peer_id = registration[0].decode()
    if not binding_is_valid(settlement.node, peer_id, ledger.address, registration[1]):
        raise VerificationError(f"{settlement.node}'s binding to peer {peer_id} has a bad Ed25519 signature")
    if receipt is not None and checked is not None:
        if CID.for_block(receipt, 0x71).digest != settlement.receipt_hash:
            raise VerificationError(f"the chain records a different receipt for job {job_id}")
        if checked.node != peer_id:
            raise VerificationError(f"the chain paid {peer_id}, but the receipt was signed by {checked.node}")
    return SettlementCheck(job_id, settlement.node, peer_id, settlement.amount, str(result), settlement.tx_hash,
                           settlement.block)  # fmt: skip
