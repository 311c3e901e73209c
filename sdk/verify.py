"""Offline verification: content by CID, receipts by signature, settlement by the chain's record.

Nothing here trusts a node: content is re-hashed as IPFS computes it, a receipt is checked
against the public key inside the peer ID it names, and a settlement is read from the
ledger contract's own events.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agents import receipt as receipts_module
from agents.errors import ReceiptError
from contracts.accounting import chain_job_id
from sdk.errors import VerificationError
from sdk.extras import require_pay
from storage.cid import CID, RAW
from storage.errors import StorageError
from storage.unixfs.importer import ImportOptions, NullSink, import_bytes, import_path

if TYPE_CHECKING:  # the chain stack is mycelnet[pay]'s: only verify_settlement imports it
    from contracts.ledger import Ledger, Settlement

# The layouts CIDs are made with: kubo's defaults and the IPIP-499 (1 MiB chunks) profile.
_PROFILES = ((256 << 10, 174), (1 << 20, 1024))


def _as_cid(cid: CID | str) -> CID:
    try:
        return cid if isinstance(cid, CID) else CID.parse(cid)
    except StorageError as exc:
        raise VerificationError(f"{cid!r} is not a CID: {exc}") from None


def _options(cid: CID, chunk_size: int, max_links: int, hidden: bool = False) -> ImportOptions:
    return ImportOptions(cid_version=cid.version, chunk_size=chunk_size, max_links=max_links, include_hidden=hidden)


def verify_bytes(cid: CID | str, data: bytes) -> CID:
    """Check that ``data`` is exactly the content ``cid`` names (a raw block or a UnixFS file).

    Returns the CID checked; raises VerificationError saying what differs. Every check in this
    module raises rather than returning False, so a caller cannot mistake a mismatch for success
    by forgetting to test a return value; :func:`bytes_match` is the boolean form.
    """
    expected = _as_cid(cid)
    if expected.codec == RAW and CID.for_block(data, RAW) == expected:
        return expected
    for chunk, links in _PROFILES:
        if import_bytes(data, NullSink(), _options(expected, chunk, links)).cid == expected:
            return expected
    actual = import_bytes(data, NullSink(), _options(expected, *_PROFILES[0])).cid
    raise VerificationError(f"{len(data)} bytes hash to {actual}, not {expected}")


def verify_path(cid: CID | str, path: str | os.PathLike[str]) -> CID:
    """Check that the file or directory at ``path`` is what ``cid`` names, as ``ipfs add -r`` computes it.

    Returns the CID checked; raises VerificationError saying what differs (or that ``path`` is
    missing). :func:`path_matches` is the boolean form.
    """
    expected = _as_cid(cid)
    target = Path(path)
    if not target.exists():
        raise VerificationError(f"{target} does not exist")
    if target.is_file() and expected.codec == RAW and CID.for_block(target.read_bytes(), RAW) == expected:
        return expected
    for chunk, links in _PROFILES:
        for hidden in (False, True):
            if import_path(target, NullSink(), _options(expected, chunk, links, hidden)).cid == expected:
                return expected
    actual = import_path(target, NullSink(), _options(expected, *_PROFILES[0])).cid
    raise VerificationError(f"{target} hashes to {actual}, not {expected}")


def bytes_match(cid: CID | str, data: bytes) -> bool:
    """:func:`verify_bytes` as a boolean: False on a mismatch (a malformed CID still raises)."""
    try:
        verify_bytes(cid, data)
    except VerificationError:
        _as_cid(cid)
        return False
    return True


def path_matches(cid: CID | str, path: str | os.PathLike[str]) -> bool:
    """:func:`verify_path` as a boolean: False on a mismatch (a malformed CID or missing path still raises)."""
    expected = _as_cid(cid)
    if not Path(path).exists():
        raise VerificationError(f"{path} does not exist")
    try:
        verify_path(expected, path)
    except VerificationError:
        return False
    return True


def verify_receipt(
    signed: bytes, job_id: str | None = None, result: CID | str | None = None, node: str | None = None
) -> receipts_module.Receipt:
    """Check the node's Ed25519 signature and, when given, that it is for this job, result and node."""
    try:
        checked = receipts_module.verify(signed)
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
    """A job's payment to one node as the chain recorded it.

    ``receipt_checked`` is True when the settlement was matched against the receipt that
    node signed (its hash and result); False when no receipt of that node was given, so
    only the result CID and the address-to-peer binding were checked.
    """

    job_id: str
    node_address: str
    node_peer_id: str
    amount: int
    result: str
    tx_hash: str
    block: int
    receipt_checked: bool = False


def verify_settlement(
    job_id: str,
    rpc_url: str,
    contract: str,
    receipt: bytes | None = None,
    result: CID | str | None = None,
    receipts: Iterable[bytes] = (),
) -> list[SettlementCheck]:
    """Read the ledger's Settled events for the job and check each one.

    Every settlement must record a valid result CID (``result`` when given) and pay an address
    whose registered peer ID is bound to it by a valid Ed25519 signature. ``receipt`` and
    ``receipts`` are signed receipt bytes (a redundant job has one per node that ran it): each
    settlement is checked against the receipt its own node signed, since each node claims with
    its own receipt, so its hash and result must match that one, not another node's. Raises
    VerificationError if anything disagrees or nothing was settled.
    """
    require_pay("checking a settlement on the chain")
    from web3 import Web3

    from contracts.ledger import Ledger

    signed = [*([receipt] if receipt is not None else []), *receipts]
    by_node: dict[str, tuple[bytes, receipts_module.Receipt]] = {}
    for one in signed:
        checked = verify_receipt(one, job_id)
        by_node[checked.node] = (one, checked)
    ledger = Ledger(Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10})), contract)
    try:
        settlements = ledger.settlements(chain_job_id(job_id))
    except Exception as exc:
        raise VerificationError(f"could not read the ledger at {rpc_url}: {exc}") from None
    if not settlements:
        raise VerificationError(f"job {job_id} has no settlement on ledger {contract}")
    expected_result = _as_cid(result) if result is not None else None
    return [_check_one(ledger, job_id, settlement, by_node, expected_result) for settlement in settlements]


def _check_one(
    ledger: Ledger,
    job_id: str,
    settlement: Settlement,
    by_node: Mapping[str, tuple[bytes, receipts_module.Receipt]],
    expected_result: CID | None,
) -> SettlementCheck:
    from contracts.binding import binding_is_valid

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
    own = by_node.get(peer_id)
    signed_results = {checked.result for _, checked in by_node.values()}
    if own is None and signed_results and result not in signed_results:
        raise VerificationError(f"the chain records result {result} for job {job_id}, but its receipts name "
                                f"{', '.join(sorted(map(str, signed_results)))}")  # fmt: skip
    if own is not None:
        signed, checked = own
        if CID.for_block(signed, 0x71).digest != settlement.receipt_hash:
            raise VerificationError(
                f"the chain records a different receipt for job {job_id} from {peer_id} than the one it signed"
            )
        if checked.result != result:
            raise VerificationError(f"the chain records result {result} for job {job_id}, "
                                    f"but {peer_id} signed {checked.result}")  # fmt: skip
    return SettlementCheck(job_id, settlement.node, peer_id, settlement.amount, str(result), settlement.tx_hash,
                           settlement.block, own is not None)  # fmt: skip
