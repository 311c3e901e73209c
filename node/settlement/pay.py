"""``/mycel/pay/1.0.0``: the requesting node hands each executor its client-signed payment.

A protocol of its own, apart from the job protocol, because payment happens after the job:
the client signs a JobPayment only once it holds the verified result and receipts, posts them
to its requesting node (``POST /v1/jobs/{id}/payment``), and that node forwards each executor
the one that names it. Request: dag-cbor ``{"job_id", "payment"}`` (the signed envelope);
answer: ``{"accepted": bool, "reason": str, "amount": str}``. The executor checks the payment
against the receipt it stored (node.settlement.service.NodeSettlement.accept_payment).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contracts.errors import ChainError
from node.errors import NetworkError
from node.p2p.network import P2PNetwork
from node.settlement.service import NodeSettlement
from storage import dagcbor
from storage.errors import CodecError

log = logging.getLogger("mycelnet.settlement")

PROTOCOL = "/mycel/pay/1.0.0"
TIMEOUT = 10.0


class PaymentHandler:
    """The executor's side: accept a payment for a job this node delivered."""

    def __init__(self, settlement: NodeSettlement | None) -> None:
        self.settlement = settlement

    async def handle(self, peer: str, request: bytes) -> list[bytes]:
        return [dagcbor.encode(await self.accept(request))]

    async def accept(self, request: bytes) -> dict[str, Any]:
        if self.settlement is None:
            return {"accepted": False, "reason": "this node settles on no chain", "amount": "0"}
        try:
            message = dagcbor.decode(request)
            if not isinstance(message, dict) or not isinstance(message.get("job_id"), str):
                raise CodecError("a payment message is a map with a job_id and a payment")
            payment = message.get("payment")
            if not isinstance(payment, bytes):
                raise CodecError("the payment must be the signed envelope's bytes")
            claim = await asyncio.to_thread(self.settlement.accept_payment, message["job_id"], payment)
        except (CodecError, ChainError) as exc:
            return {"accepted": False, "reason": str(exc), "amount": "0"}
        log.info("job %s: payment of %d wei accepted, claim queued", claim.job_id, claim.amount)
        return {"accepted": True, "reason": "claim queued", "amount": str(claim.amount)}


async def forward(network: P2PNetwork, peer: str, job_id: str, payment: bytes) -> dict[str, Any]:
    """Send one executor its payment; the answer says whether it accepted it, and why not."""
    request = dagcbor.encode({"job_id": job_id, "payment": payment})
    try:
        frames = await network.request(peer, PROTOCOL, request, timeout=TIMEOUT)
        answer = dagcbor.decode(frames[0]) if frames else None
    except (NetworkError, CodecError, IndexError) as exc:
        return {"accepted": False, "reason": f"{peer} unreachable: {exc}", "amount": "0"}
    if not isinstance(answer, dict) or not isinstance(answer.get("accepted"), bool):
        return {"accepted": False, "reason": f"{peer} answered with a malformed message", "amount": "0"}
    return {"accepted": answer["accepted"], "reason": str(answer.get("reason", "")),
            "amount": str(answer.get("amount", "0"))}  # fmt: skip
