"""Settlement as the node sees it: which payments it accepts, and a claim for each paid job.

Configured by ``[chain]`` (rpc_url, contract, key_file, batch_size, batch_interval). With no
rpc_url the node runs unpaid jobs only and announces no chain address.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from pathlib import Path
from typing import Any

from web3 import Web3

from contracts.binding import binding_is_valid, binding_message
from contracts.errors import AuthorizationError, ChainError
from contracts.keys import load_or_create_key
from contracts.ledger import Ledger
from contracts.payment import Payment
from node.config import NodeConfig
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.settlement.claims import Claim, ClaimStore
from node.settlement.submitter import ClaimSubmitter
from storage.cid import CID

log = logging.getLogger("mycelnet.settlement")


class NodeSettlement:
    def __init__(self, config: NodeConfig, identity: NodeIdentity, metrics: Metrics) -> None:
        self.identity = identity
        self.rpc_url = str(config.get("chain", "rpc_url"))
        key_file = str(config.get("chain", "key_file")) or str(config.data_dir / "chain.key")
        self.account = load_or_create_key(Path(os.path.expanduser(key_file)))
        self.price = int(config.get("capacity", "price_per_cpu_second"))
        self.ledger = Ledger(Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10})),
                             str(config.get("chain", "contract")))  # fmt: skip
        self.claims = ClaimStore(config.data_dir / "claims")
        self.submitter = ClaimSubmitter(
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
        key = (Web3.to_checksum_address(address), peer_id)
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

    def payment_for_me(self, job_id: str, payment: bytes) -> Payment:
        """The job's payment as far as it concerns this node; AuthorizationError if unusable."""
        mine = Payment.decode(payment, job_id).for_node(self.address)
        if mine is None:
            raise AuthorizationError(f"the job's payment holds no authorisation for this node ({self.address})")
        mine.check_usable(self.chain_id, self.ledger.address)
        return mine

    def claim(self, job_id: str, payment: bytes, signed_receipt: bytes, result: CID, cpu_seconds: float) -> Claim:
        """Queue the claim for a job this node ran: price x CPU seconds, capped at maxAmount."""
        mine = self.payment_for_me(job_id, payment)
        signed = mine.authorizations[self.address]
        amount = min(mine.max_amount, math.ceil(self.price * max(cpu_seconds, 0.0)))
        auth = signed.authorization
        claim = Claim(
            job_id=job_id, chain_job_id=auth.job_id, client=auth.client, node=auth.node,
            max_amount=auth.max_amount, expiry=auth.expiry, nonce=auth.nonce, v=signed.v, r=signed.r,
            s=signed.s, amount=amount, result_cid=bytes(result), receipt_hash=receipt_hash(signed_receipt),
        )  # fmt: skip
        claim.request().as_tuple()  # ChainError now, not in every later batch, if the ledger cannot encode it
        self.submitter.enqueue(claim)
        return claim

    def summary(self) -> dict[str, Any]:
        return {"address": self.address, "contract": self.ledger.address, "rpc_url": self.rpc_url,
                "chain_id": self.chain_id, "registered": self.submitter.registered,
                "claims": self.claims.counts()}  # fmt: skip


def receipt_hash(signed_receipt: bytes) -> bytes:
    """What the ledger records for a receipt: the sha2-256 digest of its block (the digest of its CID)."""
    return CID.for_block(signed_receipt, 0x71).digest
