"""Settlement as the node sees it: which commitments it works for, the evidence it keeps of
what it delivered, and a claim for each payment a client sends for delivered work.

An offer carries only the client's JobCommitment, which this node checks (signature, ledger,
expiry, price ceiling, refuse-list) but cannot claim. After the run it stores a Delivery
(commitment, receipt, what the receipt earns). The client's JobPayment arrives later over
``/mycel/pay/1.0.0`` (node.settlement.pay); it is claimed only if it names this node, this
job's client, the stored receipt's hash and result. A delivery still unpaid when its
commitment expires puts the client on the refuse-list, as does a payment below what the
receipt earns: this node offers that client no more work (``GET /v1/ledger`` shows the list).

Configured by ``[chain]`` (rpc_url, contract, key_file, batch_size, batch_interval). With no
rpc_url the node runs unpaid jobs only and announces no chain address.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.authorization import JobCommitment, JobPayment
from contracts.binding import binding_is_valid, binding_message
from contracts.checksum import to_checksum_address
from contracts.errors import AuthorizationError, ChainError
from contracts.payment import Envelope, amount_for, check_commitment_usable, commitment_of, receipt_hash
from node.config import NodeConfig
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.settlement.claims import Claim, ClaimStore, Delivery
from storage.cid import CID

if TYPE_CHECKING:  # web3 and eth_account load only on a node with a ledger: see __init__
    from contracts.ledger import Ledger
    from node.settlement.submitter import ClaimSubmitter

__all__ = ["NodeSettlement", "receipt_hash"]

log = logging.getLogger("mycelnet.settlement")


class NodeSettlement:
    def __init__(self, config: NodeConfig, identity: NodeIdentity, metrics: Metrics) -> None:
        from web3 import Web3

        from contracts.keys import load_or_create_key
        from contracts.ledger import Ledger
        from node.settlement.submitter import ClaimSubmitter

        self.identity = identity
        self.rpc_url = str(config.get("chain", "rpc_url"))
        key_file = str(config.get("chain", "key_file")) or str(config.data_dir / "chain.key")
        self.account = load_or_create_key(Path(os.path.expanduser(key_file)))
        self.price = int(config.get("capacity", "price_per_cpu_second"))
        self.ledger: Ledger = Ledger(Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10})),
                             str(config.get("chain", "contract")))  # fmt: skip
        self.claims = ClaimStore(config.data_dir / "claims")
        self.submitter: ClaimSubmitter = ClaimSubmitter(
            self.claims,
            self.ledger,
            self.account,
            metrics,
            int(config.get("chain", "batch_size")),
            float(config.get("chain", "batch_interval")),
        )
        self.chain_id = 0
        self._bound: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    async def start(self) -> None:
        try:
            self.chain_id = await asyncio.to_thread(lambda: int(self.ledger.w3.eth.chain_id))
        except Exception as exc:
            raise ChainError(f"chain.rpc_url {self.rpc_url} does not answer: {exc}") from None
        peer_id = self.identity.peer_id
        binding = self.identity.sign(binding_message(self.address, peer_id, self.ledger.address))
        try:  # registered before the first announcement, so requesters can check the binding at once
            await asyncio.to_thread(self.submitter.ensure_registered, peer_id.encode(), binding)
        except ChainError as exc:
            log.warning("registration deferred: %s", exc)  # the submitter's loop retries
        self._task = asyncio.create_task(self.submitter.run(peer_id.encode(), binding))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.claims.close()

    def is_bound(self, address: str, peer_id: str) -> bool:
        """Whether the ledger binds ``address`` to ``peer_id`` with a valid Ed25519 signature
        (remembered once true; asked again while false, since registration can come late)."""
        key = (to_checksum_address(address), peer_id)
        if key in self._bound:
            return True
        if address == self.address:
            return peer_id == self.identity.peer_id
        try:
            current = self.ledger.peer_id_of(address)  # empty once deregistered
            registration = self.ledger.registration(address) if current == peer_id.encode() else None
        except Exception:
            return False
        ok = (
            registration is not None
            and registration[0] == peer_id.encode()
            and binding_is_valid(address, peer_id, self.ledger.address, registration[1])
        )
        if ok:
            self._bound.add(key)
        return ok

    def stake_of(self, address: str) -> int:
        """The address's stake on the ledger; 0 when the chain does not answer (a job asking for a
        stake then skips the node rather than trusting an unread one)."""
        try:
            return self.ledger.stake_of(address)
        except Exception as exc:
            log.warning("stake of %s unreadable: %s", address, exc)
            return 0

    def commitment_for_offer(self, job_id: str, commitment: bytes) -> Envelope:
        """The job's commitment if this node will work under it; AuthorizationError saying why not."""
        terms = commitment_of(commitment, job_id)
        check_commitment_usable(terms, self.chain_id, self.ledger.address, self.price)
        self._refuse_lapsed(terms.client)
        refusal = self.claims.refusal(terms.client)
        if refusal is not None:
            raise AuthorizationError(f"this node no longer works for {terms.client}: {refusal}")
        return terms

    def _refuse_lapsed(self, client: str, now: float | None = None) -> None:
        """Put the client on the refuse-list if a delivery of theirs went unpaid past its expiry."""
        now = time.time() if now is None else now
        for delivery in self.claims.unpaid(client):
            if delivery.expiry < now:
                self.claims.refuse(client, f"job {delivery.job_id} was delivered and never paid")
                return

    def delivered(
        self, job_id: str, commitment: bytes, signed_receipt: bytes, result: CID, cpu_seconds: float
    ) -> Delivery:
        """Keep the evidence of a paid job this node ran, before answering, until it is paid."""
        terms = commitment_of(commitment, job_id)
        record = terms.signed.record
        assert isinstance(record, JobCommitment)
        delivery = Delivery(job_id=job_id, client=record.client, commitment=commitment, receipt=signed_receipt,
                            result_cid=bytes(result), earned=amount_for(cpu_seconds, self.price, record.max_amount),
                            expiry=record.expiry)  # fmt: skip
        self.claims.deliver(delivery)
        return delivery

    def accept_payment(self, job_id: str, payment: bytes) -> Claim:
        """Check the client's JobPayment against what this node delivered and queue its claim.
        AuthorizationError if it names another node, client, receipt or result, or nothing was
        delivered; a repeat of the payment already accepted returns that claim."""
        envelope = Envelope.decode(payment, JobPayment)
        envelope.check_ledger(self.chain_id, self.ledger.address)
        p = envelope.signed.record
        assert isinstance(p, JobPayment)
        claim = Claim.of(job_id, envelope.signed)
        existing = self.claims.get(job_id)
        if existing is not None:
            if existing.request() == claim.request():
                return existing
            raise AuthorizationError(f"job {job_id} is already paid here (nonce {existing.nonce})")
        delivery = self.claims.delivery(job_id)
        if delivery is None:
            raise AuthorizationError(f"this node delivered no paid job {job_id}")
        if p.node != self.address:
            raise AuthorizationError(f"the payment is for node {p.node}, not this node ({self.address})")
        if p.client != delivery.client or p.job_id != commitment_of(delivery.commitment, job_id).signed.record.job_id:
            raise AuthorizationError("the payment is not from the client that committed to this job")
        if p.receipt_hash != receipt_hash(delivery.receipt):
            raise AuthorizationError("the payment is bound to another receipt than the one this node signed")
        if claim.result_cid != delivery.result_cid:
            raise AuthorizationError("the payment is bound to another result than the one this node delivered")
        if p.expiry < time.time() + 60:
            raise AuthorizationError("the payment expires before it could be claimed")
        claim.request().as_tuple()  # ChainError now, not in every later batch, if the ledger cannot encode it
        if p.amount < delivery.earned:
            short = f"job {job_id} was paid {p.amount} wei of the {delivery.earned} its receipt earns"
            self.claims.refuse(p.client, short)
        if not self.submitter.enqueue_paid(claim):
            return self.claims.get(job_id) or claim
        return claim

    def summary(self) -> dict[str, Any]:
        return {"address": self.address, "contract": self.ledger.address, "rpc_url": self.rpc_url,
                "chain_id": self.chain_id, "registered": self.submitter.registered,
                "price": self.price, "claims": self.claims.counts(),
                "refused_clients": self.claims.refused()}  # fmt: skip
