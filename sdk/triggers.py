"""Triggers from the client side: deploy an agent to run on stream entries, a schedule or HTTP calls.

``await client.deploy_trigger("count", "counter", "stream", stream=sid, every_n=10)`` makes
the node run the agent on every ten new entries of ``sid``; ``await client.invoke("echo",
b"hi")`` runs an ``invoke`` trigger now and answers with its output. Every receipt that comes
back is verified here (signature, and that the trigger part names a coherent seq range), so a
node cannot claim it consumed entries it did not name.
"""

from __future__ import annotations

import base64
import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agents import receipt as receipts
from agents.errors import ReceiptError
from sdk.errors import UsageError, VerificationError
from storage.cid import CID

if TYPE_CHECKING:
    from sdk.client import Client

__all__ = ["Invocation", "TriggerReceipt", "Triggers"]

KINDS = ("stream", "schedule", "invoke")


@dataclass(frozen=True)
class Invocation:
    """An HTTP invocation's answer: the agent's output, the verified receipt, the node's time for it."""

    status: str
    output: bytes | None
    output_cid: CID | None
    receipt: receipts.Receipt
    receipt_bytes: bytes
    milliseconds: float


@dataclass(frozen=True)
class TriggerReceipt:
    invocation: int
    receipt: receipts.Receipt
    receipt_bytes: bytes

    @property
    def run(self) -> receipts.TriggerRun:
        assert self.receipt.trigger is not None  # checked when it was read
        return self.receipt.trigger


def _verified(raw: bytes, name: str) -> receipts.Receipt:
    try:
        record = receipts.verify(raw)
    except ReceiptError as exc:
        raise VerificationError(f"trigger {name}: {exc}") from None
    if record.trigger is None or record.trigger.trigger != name:
        raise VerificationError(f"trigger {name}: the node sent a receipt of another job")
    return record


class Triggers:
    """The trigger routes of one node (``client.triggers``)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def deploy(
        self,
        name: str,
        agent: CID | str,
        kind: str,
        *,
        stream: str = "",
        every_n: int = 0,
        every_ms: int = 0,
        schedule: str = "",
        state: CID | str | None = None,
        output: str = "",
        standby: str = "",
    ) -> dict[str, Any]:
        """Deploy (or redeploy, keeping its cursor) trigger ``name`` for an agent the node holds.

        ``standby=PEER`` on a node holding a replica of the stream: follow PEER's receipts for
        this trigger and take over, from the last one, when PEER stops answering."""
        if kind not in KINDS:
            raise UsageError(f"a trigger's kind is one of {', '.join(KINDS)}, not {kind!r}")
        body: dict[str, Any] = {"name": name, "agent": str(agent), "kind": kind}
        optional = {"stream": stream, "every_n": every_n, "every_ms": every_ms, "schedule": schedule, "output": output,
                    "standby": standby}  # fmt: skip
        body.update({key: value for key, value in optional.items() if value})
        if state is not None:
            body["state"] = str(state)
        answer: dict[str, Any] = await self.client._call("POST", "/v1/triggers", json=body)
        return answer

    async def list(self) -> list[dict[str, Any]]:
        answer = await self.client._call("GET", "/v1/triggers")
        triggers: list[dict[str, Any]] = answer["triggers"]
        return triggers

    async def get(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.client._call("GET", f"/v1/triggers/{quote(name, safe='')}")
        return answer

    async def remove(self, name: str) -> None:
        await self.client._call("DELETE", f"/v1/triggers/{quote(name, safe='')}")

    async def receipts(self, name: str, after: int = 0) -> builtins.list[TriggerReceipt]:
        """Every invocation's receipt after ``after``, verified, oldest first."""
        found: builtins.list[TriggerReceipt] = []
        while True:
            path = f"/v1/triggers/{quote(name, safe='')}/receipts"
            page = await self.client._call("GET", path, params={"after": str(after)})
            items: Sequence[dict[str, Any]] = page["receipts"]
            for item in items:
                raw = base64.b64decode(item["data"])
                found.append(TriggerReceipt(item["invocation"], _verified(raw, name), raw))
                after = item["invocation"]
            if not items:
                return found

    async def invoke(self, name: str, data: bytes | str = b"") -> Invocation:
        """Run the ``invoke`` trigger ``name`` on ``data`` now; its output and verified receipt."""
        body = {"input": data} if isinstance(data, str) else {"data": base64.b64encode(data).decode()}
        answer = await self.client._call("POST", f"/v1/agents/{quote(name, safe='')}/invoke", json=body)
        raw = base64.b64decode(answer["receipt"])
        output = base64.b64decode(answer["output"]) if answer["output"] is not None else None
        output_cid = CID.parse(answer["output_cid"]) if answer["output_cid"] else None
        return Invocation(answer["status"], output, output_cid, _verified(raw, name), raw, float(answer["ms"]))
