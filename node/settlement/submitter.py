"""Send this node's claims to the ledger in batches: every ``batch_size`` claims or every
``interval`` seconds, whichever comes first.

Never twice: a batch's transaction hash is stored before the transaction is sent, and a
claim whose transaction is lost is re-sent only once the ledger says its nonce is unused.
RPC failures are retried with backoff; a claim the ledger refuses (expired, client out of
funds, ...) is marked failed with the ledger's own reason, and the rest of its batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3Exception

from contracts.errors import ChainError
from contracts.ledger import Ledger
from node.metrics import Metrics
from node.settlement.claims import Claim, ClaimState, ClaimStore

log = logging.getLogger("mycelnet.settlement")

RECEIPT_TIMEOUT = 60.0
MAX_BACKOFF = 60.0


class ClaimSubmitter:
    def __init__(
        self,
        store: ClaimStore,
        ledger: Ledger,
        account: LocalAccount,
        metrics: Metrics,
        batch_size: int = 20,
        interval: float = 5.0,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.account = account
        self.metrics = metrics
        self.batch_size = max(1, batch_size)
        self.interval = interval
        self._wake = asyncio.Event()
        self.registered = False
        self._refresh_gauges()

    # -- the node's side --------------------------------------------------------------
    def enqueue(self, claim: Claim) -> bool:
        """Persist a claim for a finished job (once per job); it is sent with the next batch."""
        added = self.store.add(claim)
        if added:
            self.metrics.inc("claims_enqueued_total")
            self._refresh_gauges()
            if len(self.store.in_state(ClaimState.PENDING)) >= self.batch_size:
                self._wake.set()
        return added

    def enqueue_paid(self, claim: Claim) -> bool:
        """Like enqueue, for the claim of a delivery: the delivery's evidence goes in the same write."""
        added = self.store.paid(claim)
        if added:
            self.metrics.inc("claims_enqueued_total")
            self._refresh_gauges()
            if len(self.store.in_state(ClaimState.PENDING)) >= self.batch_size:
                self._wake.set()
        return added

    async def run(self, peer_id: bytes, binding: bytes) -> None:
        failures = 0
        while True:
            try:
                if not self.registered:
                    await asyncio.to_thread(self.ensure_registered, peer_id, binding)
                await asyncio.to_thread(self.flush)
                failures = 0
            except ChainError as exc:
                failures += 1
                self.metrics.inc("claims_rpc_errors_total")
                log.warning("settlement: %s (retrying)", exc)
                await asyncio.sleep(min(MAX_BACKOFF, 0.5 * 2**failures))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    def ensure_registered(self, peer_id: bytes, binding: bytes) -> None:
        try:
            if self.ledger.peer_id_of(self.account.address) != peer_id:
                self.ledger.register(self.account, peer_id, binding)
                log.info("registered %s for peer %s on the ledger", self.account.address, peer_id.decode())
        except (Web3Exception, OSError) as exc:
            raise ChainError(f"registration failed: {exc}") from None
        self.registered = True

    # -- one pass (blocking; runs in a worker thread) -----------------------------------
    def flush(self) -> int:
        """Reconcile submitted claims, then send every pending one; returns how many settled."""
        try:
            settled = self._reconcile()
            pending = self.store.in_state(ClaimState.PENDING)
            for start in range(0, len(pending), self.batch_size):
                settled += self._submit(pending[start : start + self.batch_size])
            return settled
        except (Web3Exception, OSError) as exc:
            raise ChainError(f"chain request failed: {exc}") from None
        finally:
            self._refresh_gauges()

    def _reconcile(self) -> int:
        settled = 0
        by_tx: dict[str, list[Claim]] = {}
        for claim in self.store.in_state(ClaimState.SUBMITTED):
            by_tx.setdefault(claim.tx_hash, []).append(claim)
        for tx_hash, claims in by_tx.items():
            try:
                receipt = self.ledger.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                try:
                    self.ledger.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
                    continue  # still waiting to be mined
                except TransactionNotFound:
                    receipt = None  # lost: decide claim by claim from the ledger's nonce bitmap
            if receipt is not None and receipt["status"] == 1:
                settled += self._mark_settled(claims, receipt)
            else:
                settled += self._settled_elsewhere_or_pending(claims)
        return settled

    def _settled_elsewhere_or_pending(self, claims: list[Claim]) -> int:
        settled = 0
        for claim in claims:
            if self.ledger.nonce_used(claim.client, claim.nonce):
                found = [s for s in self.ledger.settlements(claim.chain_job_id) if s.node == self.account.address]
                claim.state = ClaimState.SETTLED if found else ClaimState.FAILED
                if found:
                    claim.tx_hash, claim.block = found[0].tx_hash, found[0].block
                    settled += 1
                    self.metrics.inc("claims_settled_total")
                else:
                    claim.error = "the client's authorisation nonce was spent elsewhere"
                    self.metrics.inc("claims_failed_total")
            else:
                claim.state, claim.tx_hash = ClaimState.PENDING, ""
            self.store.save([claim])
        return settled

    def _submit(self, batch: list[Claim]) -> int:
        retried = [c for c in batch if c.attempts > 0]
        settled = self._settled_elsewhere_or_pending(retried) if retried else 0
        batch = [c for c in batch if c.state is ClaimState.PENDING]
        if not batch:
            return settled
        call = self.ledger.contract.functions.claim_batch([c.request().as_tuple() for c in batch])
        try:
            tx = call.build_transaction(self._tx_fields())  # type: ignore[arg-type]  # estimates gas: a bad claim shows here
        except ContractLogicError:
            batch = self._drop_refused(batch)
            if not batch:
                return settled
            call = self.ledger.contract.functions.claim_batch([c.request().as_tuple() for c in batch])
            tx = call.build_transaction(self._tx_fields())  # type: ignore[arg-type]
        signed = self.account.sign_transaction(tx)  # type: ignore[arg-type]
        tx_hash = "0x" + bytes(signed.hash).hex()
        for claim in batch:
            claim.state, claim.tx_hash, claim.attempts = ClaimState.SUBMITTED, tx_hash, claim.attempts + 1
        self.store.save(batch)  # before sending: a crash from here on is reconciled, not repeated
        self.ledger.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.ledger.w3.eth.wait_for_transaction_receipt(signed.hash, timeout=RECEIPT_TIMEOUT)
        if receipt["status"] != 1:
            return settled + self._settled_elsewhere_or_pending(batch)
        return settled + self._mark_settled(batch, receipt)

    def _drop_refused(self, batch: list[Claim]) -> list[Claim]:
        kept = []
        for claim in batch:
            reason = self.ledger.check_claim(self.account.address, claim.request())
            if reason is None:
                kept.append(claim)
                continue
            claim.state, claim.error = ClaimState.FAILED, f"the ledger refused it: {reason}"
            self.metrics.inc("claims_failed_total")
            log.warning("claim for job %s refused: %s", claim.job_id, reason)
            self.store.save([claim])
        return kept

    def _mark_settled(self, claims: list[Claim], receipt: Any) -> int:
        gas = int(receipt["gasUsed"])
        for claim in claims:
            claim.state, claim.block, claim.gas = ClaimState.SETTLED, int(receipt["blockNumber"]), gas // len(claims)
            claim.error = ""
        self.store.save(claims)
        self.metrics.inc("claims_settled_total", len(claims))
        self.metrics.inc("claims_gas_total", gas)
        self.metrics.inc("claims_transactions_total")
        return len(claims)

    def _tx_fields(self) -> dict[str, Any]:
        address = self.account.address
        return {"from": address, "nonce": self.ledger.w3.eth.get_transaction_count(address, "pending")}

    def _refresh_gauges(self) -> None:
        counts = self.store.counts()
        self.metrics.set("claims", counts["pending"] + counts["submitted"], state="pending")
        self.metrics.set("claims", counts["settled"], state="settled")
        self.metrics.set("claims", counts["failed"], state="failed")
