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

__all__ = ["Invocation", "Stage", "TriggerReceipt", "Triggers", "deploy_pipeline", "parse_pipeline"]

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
        follower: str = "",
        on: str = "",
        regions: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Deploy (or redeploy, keeping its cursor) trigger ``name`` for an agent the node holds.

        ``standby=PEER`` on a node holding a replica of the stream: follow PEER's receipts for
        this trigger and take over, from the last one, when PEER stops answering. ``follower=PEER``
        on the active node names that standby: outputs are published once it holds their receipt,
        and its takeover fences this node (no output twice, even when this node was only cut off).
        ``on=PEER``: deploy on that peer (it fetches the agent from the node the client talks to).
        ``regions=[...]`` (a stream trigger, instead of ``on``): the node chooses the holder of the
        stream inside those regions nearest its head (the origin when it is inside), explained in the
        answer's ``placement``; none there: NodeApiError ``no_holder_in_regions``."""
        if kind not in KINDS:
            raise UsageError(f"a trigger's kind is one of {', '.join(KINDS)}, not {kind!r}")
        body: dict[str, Any] = {"name": name, "agent": str(agent), "kind": kind}
        optional = {"stream": stream, "every_n": every_n, "every_ms": every_ms, "schedule": schedule, "output": output,
                    "standby": standby, "follower": follower, "on": on}  # fmt: skip
        body.update({key: value for key, value in optional.items() if value})
        if state is not None:
            body["state"] = str(state)
        if regions:
            body["regions"] = list(regions)
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


# -- pipelines ------------------------------------------------------------------------------
PIPELINE_KEYS = frozenset({"name", "agent", "input", "every_n", "every_ms", "output", "state"})
MAX_STAGES = 32


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline file: ``input`` is a stream id or ``stage:NAME`` (that stage's output)."""

    name: str
    agent: str
    input: str
    every_n: int = 0
    every_ms: int = 0
    output: str = ""
    state: str | None = None

    @property
    def after(self) -> str | None:
        return self.input.removeprefix("stage:") if self.input.startswith("stage:") else None


def parse_pipeline(text: str) -> builtins.list[Stage]:
    """The stages of a pipeline file (TOML ``[[stage]]`` tables), in an order where each stage
    comes after the stage it reads from; UsageError says what is wrong."""
    import tomllib

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the pipeline file is not valid TOML: {exc}") from None
    tables = document.get("stage")
    if set(document) != {"stage"} or not isinstance(tables, builtins.list) or not 0 < len(tables) <= MAX_STAGES:
        raise UsageError(f"a pipeline file holds 1 to {MAX_STAGES} [[stage]] tables and nothing else")
    stages: dict[str, Stage] = {}
    for index, table in enumerate(tables):
        unknown = set(table) - PIPELINE_KEYS
        if unknown or not {"name", "agent", "input"} <= set(table):
            raise UsageError(f"stage {index + 1}: keys are name, agent, input (required), every_n, every_ms, output, "
                             f"state; got {', '.join(sorted(table))}")  # fmt: skip
        try:
            stage = Stage(**table)
        except TypeError as exc:
            raise UsageError(f"stage {index + 1}: {exc}") from None
        if not all(isinstance(getattr(stage, key), str) for key in ("name", "agent", "input", "output")):
            raise UsageError(f"stage {index + 1}: name, agent, input and output are strings")
        if stage.name in stages:
            raise UsageError(f"two stages are named {stage.name!r}")
        stages[stage.name] = stage
    ordered: builtins.list[Stage] = []
    placed: set[str] = set()
    while len(ordered) < len(stages):
        ready = [s for s in stages.values() if s.name not in placed and (s.after is None or s.after in placed)]
        if not ready:
            waiting = sorted(s.name for s in stages.values() if s.name not in placed)
            raise UsageError(f"stages {', '.join(waiting)} read from a stage that is missing or reads from them")
        for stage in ready:
            upstream = stages[stage.after] if stage.after else None
            if upstream is not None and not upstream.output:
                raise UsageError(f"stage {stage.name} reads stage {upstream.name}, which sets no output stream")
            ordered.append(stage)
            placed.add(stage.name)
    return ordered


async def place_stage(client: Client, stream: str) -> str:
    """Where a stage reading ``stream`` runs: "" (the node the client talks to) when it holds the
    stream, else the peer announcing the newest head of it (its origin). UsageError: nobody has it."""
    found = await client._call("GET", f"/v1/streams/{quote(stream, safe='')}/holders")
    if found["here"]:
        return ""
    holders = sorted(found["holders"], key=lambda holder: -int(holder["seq"]))
    if not holders:
        raise UsageError(f"no node is known to hold stream {stream}: append to it (or subscribe a node) first")
    return str(holders[0]["peer"])


async def deploy_pipeline(client: Client, stages: Sequence[Stage]) -> builtins.list[dict[str, Any]]:
    """Deploy each stage as a stream trigger where its input is: a stage reading a stream runs on
    the node the client talks to when it holds the stream, else on the peer whose announcement
    carries its head (that peer fetches the agent from this node); a stage reading another stage
    runs where that stage runs (its output stream lives there). Stages deploy in order; a failure
    stops there, with the stages before it deployed (a redeploy keeps their cursors). Each answer
    names ``node``: the peer the stage runs on ("" the node the client talks to)."""
    outputs: dict[str, tuple[str, str]] = {}  # stage -> (its output stream, where it runs)
    deployed = []
    for stage in stages:
        if stage.after:
            stream, node = outputs[stage.after]
        else:
            stream, node = stage.input, await place_stage(client, stage.input)
        options: dict[str, Any] = {"every_n": stage.every_n, "every_ms": stage.every_ms, "output": stage.output}
        answer = await client.triggers.deploy(stage.name, stage.agent, "stream", stream=stream, state=stage.state,
                                              on=node, **options)  # fmt: skip
        if answer.get("output_stream"):
            outputs[stage.name] = (answer["output_stream"], node)
        deployed.append(answer | {"node": node})
    return deployed
