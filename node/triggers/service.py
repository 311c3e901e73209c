"""The node's trigger service: one asyncio task per stream or schedule trigger, and HTTP invocations.

A stream trigger runs where the stream is (its origin or a replica on this node): it waits
on the stream service's ``changed`` event, takes the entries past its cursor in batches
(:func:`node.triggers.model.batch_wait`), runs the agent and commits the receipt with the
cursor in one transaction (:class:`node.triggers.store.TriggerStore`). Only then does the
output reach the output stream, from the signed entry the commit kept, so a crash anywhere
re-runs an uncommitted batch and never re-runs a committed one or loses its output.

Runs go straight to the node's executor: the trigger's placement is this node by
definition (it holds the data), so there is no offer to make. A semaphore of one slot per
core bounds the triggers' runs; one trigger runs one invocation at a time, in order.
Which holder of a stream a trigger asking for regions is deployed on is chosen before it gets
here (:mod:`node.triggers.placement`); :meth:`TriggerService.describe` names the stream's role
here (``stream_role``), which that choice takes as the chosen node's word.
The python runtime here is the warm one (forked from a pre-started worker).

The output stream is written with the trigger's own key, derived from the node's key and
the trigger's name: its entries are signed by the hosting node, not by the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import nacl.signing

from agents.bundle import open_bundle
from agents.errors import ManifestError
from agents.executor import Executor
from agents.outcome import OutcomeKind
from node.errors import NetworkError
from node.metrics import Metrics
from node.streams.model import StreamInfo, StreamRefused
from node.streams.service import StreamService
from node.triggers.fence import Verdict, verdict
from node.triggers.invocation import Invocation, run_invocation
from node.triggers.model import (
    MAX_TRIGGERS,
    Cursor,
    TriggerError,
    TriggerKind,
    TriggerSpec,
    batch_wait,
)
from node.triggers.model import (
    parse_request as parse_spec,
)
from node.triggers.placement import Placement, Role, parse_regions, takeover_refusal
from node.triggers.protocol import (
    MAX_DEPLOY,
    MAX_RECEIPTS,
    PROTOCOL,
    Deploy,
    Deployed,
    Fence,
    Progress,
    TriggerProtocolError,
    encode_fenced,
    encode_receipts,
    parse_deployed,
    parse_fenced,
    parse_receipts,
    parse_request,
)
from node.triggers.schedule import Schedule
from node.triggers.standby import (
    FENCE_RETRY_SECONDS,
    MAX_STATE_BYTES,
    PROGRESS_SECONDS,
    REQUEST_SECONDS,
    TAKEOVER_MISSES,
    adopt,
)
from node.triggers.store import TriggerStore
from storage.blockstore import BlockStore
from storage.cid import CID, DAG_CBOR
from storage.errors import InvalidCIDError
from storage.peerid import peer_id_for
from storage.streamentry import MAX_INLINE, Entry, sign_entry, stream_id

log = logging.getLogger("mycelnet.triggers")

MAX_PEER_TRIGGERS = 32  # triggers one peer may deploy here (the node's own API is bounded by MAX_TRIGGERS)
MAX_AGENT_BYTES = 256 << 20  # an agent bundle fetched from the peer deploying a trigger here
DEPLOY_SECONDS = 120.0  # a deploy on a peer: it may fetch the agent's bundle first
RETRY_SECONDS = 1.0  # after a node-side failure (the batch stays pending and runs again)
MAX_WAITING_CALLS = 32  # HTTP invocations of one trigger waiting for it at once; past that: 503, retry
_KEY_DOMAIN = b"mycel-trigger-key-v1:"


@dataclass(frozen=True)
class Answer:
    """What an invocation gives back: the agent's output, its signed receipt, how long it took."""

    status: str
    output: bytes | None
    output_cid: CID | None
    result: CID | None
    receipt: bytes
    receipt_cid: CID
    state: CID | None
    seconds: float


def trigger_key(node_key: nacl.signing.SigningKey, name: str) -> nacl.signing.SigningKey:
    """The writer key of a trigger's output stream: the node's, specialised by the trigger's name."""
    return nacl.signing.SigningKey(hashlib.sha256(_KEY_DOMAIN + bytes(node_key) + name.encode()).digest())


class Requester(Protocol):
    async def request(self, peer_id: str, protocol: str, payload: bytes, timeout: float = 30.0) -> list[bytes]: ...


class Fetcher(Protocol):
    async def fetch(
        self, root: CID, providers: Sequence[str] | None = None, *, max_bytes: int | None = None
    ) -> object: ...


def _bounded(wire: dict[str, Any]) -> dict[str, Any]:
    """A deploy's spec within the MAX_DEPLOY bytes every node accepts: a placement too long to fit
    keeps its chosen holder and counts the others it drops as ``omitted``."""
    placement = wire.get("placement")
    if placement is None or len(Deploy(wire).encode()) <= MAX_DEPLOY:
        return wire
    kept = [row for row in placement["candidates"] if row["verdict"] == "chosen"]
    dropped = len(placement["candidates"]) - len(kept)
    return {**wire, "placement": {**placement, "candidates": kept, "omitted": placement["omitted"] + dropped}}


class TriggerService:
    def __init__(
        self,
        store: TriggerStore,
        streams: StreamService,
        blocks: BlockStore,
        executor: Executor,
        metrics: Metrics,
        cores: int = 1,
        network: Requester | None = None,
        exchange: Fetcher | None = None,
        region: Callable[[], str] = lambda: "local",
    ) -> None:
        self.store = store
        self.region = region  # this node's announced (self-declared) region: a trigger's regions are checked by it
        self._held_back: dict[str, str] = {}  # standbys whose active node is gone but which may not take over: why
        self.network = network  # None: no standby triggers (tests, tools)
        self.exchange = exchange  # brings a DAG from a peer (a standby's copy of the active node's state)
        self._promoted: set[str] = set()  # standby triggers that took over here
        self.streams = streams
        self.blocks = blocks
        self.executor = executor
        self.metrics = metrics
        self.cores = max(1, cores)
        self._specs: dict[str, TriggerSpec] = {}
        self._cursors: dict[str, Cursor] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots: asyncio.Semaphore | None = None
        self._waiting: dict[str, int] = {}  # HTTP invocations per trigger, running or waiting
        self._cancel = threading.Event()  # set at stop: running sandboxes stop within about half a second
        self._running: set[asyncio.Future[Invocation]] = set()
        self._acknowledged: dict[str, int] = {}  # receipts the follower holds, per trigger with a follower
        self._acks: dict[str, asyncio.Event] = {}  # set on each acknowledgement or fence
        self._published: dict[str, int] = {}  # a follower's trigger: the output seq known to be in its stream
        self._fenced_peers: set[str] = set()  # taken-over triggers whose old active node confirmed its fence

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        for spec in await asyncio.to_thread(self.store.specs):
            if spec.kind is TriggerKind.STREAM:  # its stream's policy in memory (describe reads it from there)
                await asyncio.to_thread(self.streams.policy.get, spec.stream)
            self._specs[spec.name] = spec
            self._cursors[spec.name] = await asyncio.to_thread(self.store.cursor, spec.name)
            await self._repair_output(spec)
            self._run(spec)

    async def stop(self) -> None:
        """Stop every loop and every running sandbox, and wait for their threads (the stores close next)."""
        self._cancel.set()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*self._running, return_exceptions=True)

    # -- deploy, list, remove ----------------------------------------------------------
    async def deploy(self, spec: TriggerSpec) -> dict[str, Any]:
        if spec.name not in self._specs and len(self._specs) >= MAX_TRIGGERS:
            raise TriggerError("too_many_triggers", f"this node keeps at most {MAX_TRIGGERS} triggers", 409)
        if spec.kind is TriggerKind.STREAM and not await self._held_here(spec.stream):
            raise TriggerError(
                "stream_not_here",
                f"stream {spec.stream} is not held here: deploy the trigger on its origin node, or subscribe "
                "this node to it first (POST /v1/streams/{id}/subscribe)",
                409,
            )
        if spec.kind is TriggerKind.STREAM:  # a standby outside them is kept: it waits instead of taking over
            refusal = await self._outside_regions(spec)  # (and its stream's policy is in memory for describe)
            if refusal is not None and not spec.standby:
                raise TriggerError("outside_regions", f"trigger {spec.name} may not run here: {refusal}", 409)
        await self._halt(spec.name)
        self._held_back.pop(spec.name, None)
        cursor = await asyncio.to_thread(self.store.deploy, spec)
        self._specs[spec.name], self._cursors[spec.name] = spec, cursor
        self._run(spec)
        self.metrics.inc("triggers_deployed_total", kind=spec.kind.value)
        return self.describe(spec.name)

    async def remove(self, name: str) -> None:
        self._spec(name)
        await self._halt(name)
        async with self._lock(name):
            await asyncio.to_thread(self.store.remove, name)
            self._specs.pop(name, None)
            self._cursors.pop(name, None)

    async def _held_here(self, stream: str) -> bool:
        """The stream is here, or is the output stream of a trigger here (which may have no entry yet)."""
        if any(self.output_stream(name) == stream for name, spec in self._specs.items() if spec.output):
            return True
        return await asyncio.to_thread(self.streams.store.info, stream) is not None

    async def _outside_regions(self, spec: TriggerSpec) -> str | None:
        """Why this node may not run stream trigger ``spec`` (None: it may): outside its effective regions,
        or outside its stream's writer-signed policy as this node holds it now."""
        policy = await asyncio.to_thread(self.streams.policy.get, spec.stream)
        return takeover_refusal(self.region(), spec.regions, policy.policy.regions if policy else ())

    def names(self) -> list[str]:
        return sorted(self._specs)

    def describe(self, name: str) -> dict[str, Any]:
        spec = self._spec(name)
        view = spec.json()
        view["cursor"] = self._cursors[name].json()
        view["output_stream"] = self.output_stream(name) if spec.output else None
        view["running"] = name in self._tasks and not self._tasks[name].done()
        view["active"] = (not spec.standby or name in self._promoted) and not self._cursors[name].fenced
        if spec.kind is TriggerKind.STREAM:  # appended here (or a trigger's output here), or replicated
            view["stream_role"] = "origin" if self.streams.origin_head(spec.stream) is not None else "replica"
        if spec.standby:
            view["old_active_fenced"] = name in self._fenced_peers
            policy = self.streams.policy.peek(spec.stream)
            refusal = takeover_refusal(self.region(), spec.regions, policy.policy.regions if policy else ())
            view["takeover"] = {"allowed": refusal is None, "reason": refusal, "held_back": self._held_back.get(name)}
        return view

    def output_stream(self, name: str) -> str:
        spec = self._spec(name)
        writer = peer_id_for(bytes(trigger_key(self.executor.signing_key, name).verify_key))
        return stream_id(writer, spec.output)

    async def receipts(self, name: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """The trigger's receipts after ``after``; a fenced node's void ones (past the fence) are kept, not served."""
        self._spec(name)
        cursor = self._cursors[name]
        if cursor.fenced:
            limit = max(0, min(limit, cursor.fenced_at - after))
        return await asyncio.to_thread(self.store.receipts, name, after, limit) if limit else []

    def _spec(self, name: str) -> TriggerSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise TriggerError("not_found", f"no trigger {name[:80]!r} on this node (mycel trigger ls)", 404)
        return spec

    # -- invocation ----------------------------------------------------------------------
    async def invoke(self, name: str, body: bytes) -> Answer:
        """Run an ``invoke`` trigger's agent on ``body`` now and answer with its output."""
        spec = self._spec(name)
        if spec.kind is not TriggerKind.INVOKE:
            raise TriggerError("not_invocable", f"trigger {name} runs on {spec.kind.value}, not on HTTP calls", 409)
        if self._waiting.get(name, 0) >= MAX_WAITING_CALLS:
            raise TriggerError("busy", f"trigger {name} has {MAX_WAITING_CALLS} calls waiting; retry later", 503)
        self._waiting[name] = self._waiting.get(name, 0) + 1
        try:
            answer = await self._invoke(spec, None, body)
        finally:
            self._waiting[name] -= 1
            if not self._waiting[name]:
                del self._waiting[name]
        if answer is None:
            raise TriggerError("node_error", f"trigger {name}: the node could not run the agent; try again", 503)
        return answer

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _invoke(self, spec: TriggerSpec, entries: Sequence[Entry] | None, request: bytes | None) -> Answer | None:
        """One invocation, committed (receipt + cursor) before its output is appended; None: not committed."""
        async with self._lock(spec.name):
            cursor = self._cursors[spec.name]
            if cursor.fenced:
                return None
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.cores)
            started = time.perf_counter()
            async with self._slots:
                if self._cancel.is_set():
                    return None
                running = asyncio.ensure_future(asyncio.to_thread(
                    run_invocation, self.executor, self.blocks, spec, cursor, entries, request, self._cancel
                ))  # fmt: skip
                self._running.add(running)
                running.add_done_callback(self._running.discard)
                try:
                    done = await asyncio.shield(running)  # a cancelled caller leaves the thread to stop()
                except Exception as exc:  # the node's side (store, bundle gone): the batch stays pending
                    log.warning("trigger %s could not run: %s: %s", spec.name, type(exc).__name__, exc)
                    self.metrics.inc("trigger_invocations_total", status="node_error")
                    return None
            kind = done.outcome.outcome.kind
            if kind in (OutcomeKind.NODE_ERROR, OutcomeKind.CANCELLED, OutcomeKind.DECLINED):
                self.metrics.inc("trigger_invocations_total", status=kind.value)
                return None
            new = self._advanced(spec, cursor, entries, done)
            publish = new.output_seq != cursor.output_seq and not spec.follower  # with one: once it acknowledged
            inline = done.output is not None and len(done.output) <= MAX_INLINE
            keep = done.output_cid if publish and not inline else None  # the entry names it: kept past the unpin
            drop = cursor.result if cursor.result is not None and cursor.result != new.result else None

            def commit_and_publish() -> StreamInfo | None:
                """The commit, then (in the same thread hop: each costs ms on a loaded host) the output."""
                self.store.commit(spec.name, done.receipt, new)
                try:
                    if keep is not None:
                        self.blocks.pin(keep, f"trigger {spec.name} output")
                    return self.streams.append_own([new.output_entry]) if publish else None
                except StreamRefused as exc:  # held already (a repair raced it), or forked elsewhere
                    log.info("trigger %s output seq %d: %s", spec.name, new.output_seq, exc)
                except Exception as exc:  # committed all the same: the output is repaired at the next start
                    log.warning("trigger %s output seq %d not appended: %s: %s", spec.name, new.output_seq,
                                type(exc).__name__, exc)  # fmt: skip
                return None

            committing = asyncio.ensure_future(asyncio.to_thread(commit_and_publish))
            try:
                published = await asyncio.shield(committing)
            except asyncio.CancelledError:  # the commit goes on in its thread: the cursor must follow it
                with contextlib.suppress(Exception):
                    await committing
                self._cursors[spec.name] = new
                raise
            self._cursors[spec.name] = new
            if published is not None:
                self.streams.appended(published, 1)
            if drop is not None:  # the new result holds the state now; after the output, not before it
                await self._unpin(drop)
            self.metrics.inc("trigger_invocations_total", status=kind.value)
            outcome = done.outcome
            return Answer(outcome.status, done.output, done.output_cid, outcome.result, done.receipt,
                          done.receipt_cid, done.state, time.perf_counter() - started)  # fmt: skip

    async def _unpin(self, result: CID) -> None:
        """Unpin a trigger's previous result (a synced commit: kept off the output's path).

        A crash before it leaves that result pinned (its bytes kept, nothing else wrong), as a
        crash between the commit and the unpin always could."""
        unpinning = asyncio.ensure_future(asyncio.to_thread(self.blocks.unpin, result))
        try:
            await asyncio.shield(unpinning)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await unpinning
            raise
        except Exception as exc:
            log.warning("trigger result %s not unpinned: %s: %s", result, type(exc).__name__, exc)

    def _advanced(self, spec: TriggerSpec, cursor: Cursor, entries: Sequence[Entry] | None, done: Invocation) -> Cursor:
        ok = done.outcome.outcome.is_ok
        changes: dict[str, Any] = {
            "seq": entries[-1].seq if entries else cursor.seq,
            "invocations": cursor.invocations + 1,
            "receipt": done.receipt_cid,
            "state": done.state,
            "result": done.outcome.result if ok else cursor.result,
            "failures": cursor.failures + (0 if ok else 1),
        }
        if spec.output and ok and done.output_cid is not None:
            small = done.output is not None and len(done.output) <= MAX_INLINE
            payload: bytes | CID = done.output if small and done.output is not None else done.output_cid
            seq = cursor.output_seq + 1
            key = trigger_key(self.executor.signing_key, spec.name)
            raw = sign_entry(key, spec.output, seq, cursor.output_head, payload, int(time.time() * 1000))
            changes.update(output_seq=seq, output_head=CID.for_block(raw, DAG_CBOR), output_entry=raw)
        return cursor.advanced(**changes)

    async def _append_output(self, spec: TriggerSpec, cursor: Cursor) -> None:
        try:
            await self.streams.append(self.output_stream(spec.name), [cursor.output_entry])
        except StreamRefused as exc:  # held already (a repair raced it), or the stream was forked elsewhere
            log.info("trigger %s output seq %d: %s", spec.name, cursor.output_seq, exc)

    async def _repair_output(self, spec: TriggerSpec) -> None:
        """The last committed output entry, appended if a crash came between the commit and the append
        (with a follower, the stream loop appends it once the follower acknowledged it)."""
        cursor = self._cursors[spec.name]
        if not spec.output or not cursor.output_entry or spec.follower:
            return
        info = await asyncio.to_thread(self.streams.store.info, self.output_stream(spec.name))
        if info is None or info.head_seq < cursor.output_seq:
            await self._append_output(spec, cursor)

    # -- the loops -----------------------------------------------------------------------
    def _run(self, spec: TriggerSpec) -> None:
        if spec.standby and self._cursors[spec.name].took_over:
            self._promoted.add(spec.name)
        if spec.standby and spec.name not in self._promoted:
            self._tasks[spec.name] = asyncio.create_task(self._standby_loop(spec))
        elif spec.standby:
            self._tasks[spec.name] = asyncio.create_task(self._taken_over_loop(spec))
        elif spec.kind is TriggerKind.STREAM:
            self._tasks[spec.name] = asyncio.create_task(self._stream_loop(spec))
        elif spec.kind is TriggerKind.SCHEDULE:
            self._tasks[spec.name] = asyncio.create_task(self._schedule_loop(spec))

    async def _halt(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _stream_loop(self, spec: TriggerSpec) -> None:
        noticed: float | None = None  # when the oldest pending entry was first seen waiting
        while True:
            if spec.follower and not await self._settle(spec):
                return
            changed = self.streams.changed(spec.stream)  # taken before reading: no entry slips between
            head = self.streams.origin_head(spec.stream)  # from memory when the stream is appended here
            if head is None:
                info = await asyncio.to_thread(self.streams.store.info, spec.stream)
                head = info.head_seq if info is not None else 0
            cursor = self._cursors[spec.name]
            pending = head - cursor.seq
            now = time.monotonic()
            noticed = None if pending <= 0 else (noticed or now)
            wait = batch_wait(pending, (now - noticed) * 1000 if noticed else 0.0, spec)
            if wait == 0:
                entries = await self.streams.stored(spec.stream, cursor.seq, min(pending, spec.batch_size))
                if entries and entries[0].seq != cursor.seq + 1:
                    log.warning("trigger %s: entries %d..%d were dropped by the stream's retention before they ran",
                                spec.name, cursor.seq + 1, entries[0].seq - 1)  # fmt: skip
                if entries and await self._invoke(spec, entries, None) is not None:
                    noticed = noticed if pending > len(entries) else None
                    continue
                await asyncio.sleep(RETRY_SECONDS)  # not committed: the same entries run again after a pause
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)

    # -- fencing (node.triggers.fence) -------------------------------------------------
    async def _settle(self, spec: TriggerSpec) -> bool:
        """Wait until the follower holds the last receipt (or fenced this node), then publish its
        output; False: fenced, the trigger runs here no more."""
        while True:
            cursor = self._cursors[spec.name]
            decided = verdict(cursor, self._acknowledged.get(spec.name, 0))
            if decided is not Verdict.WAIT:
                break
            event = self._acks.setdefault(spec.name, asyncio.Event())
            event.clear()  # no await between the check and the wait: no acknowledgement slips between
            await event.wait()
        published = self._published.get(spec.name, 0) >= cursor.output_seq  # known without a read
        if decided is not Verdict.VOID and spec.output and cursor.output_entry and not published:
            info = await asyncio.to_thread(self.streams.store.info, self.output_stream(spec.name))
            if info is None or info.head_seq < cursor.output_seq:
                await self._append_output(spec, cursor)
            self._published[spec.name] = cursor.output_seq
        if decided is Verdict.VOID:
            log.warning("trigger %s: fenced by %s after invocation %d; invocation %d here is void (its output "
                        "never published)", spec.name, cursor.fenced_by, cursor.fenced_at,
                        cursor.invocations)  # fmt: skip
        return decided is Verdict.PUBLISH

    def _acknowledge(self, name: str, held: int) -> None:
        cursor = self._cursors[name]
        held = min(held, cursor.invocations)  # a receipt not committed yet cannot be acknowledged ahead
        if held > self._acknowledged.get(name, 0):
            self._acknowledged[name] = held
            self._acks.setdefault(name, asyncio.Event()).set()

    async def _fence(self, spec: TriggerSpec, at: int, peer: str) -> None:
        """The follower took over after invocation ``at``: run no more, void what came later."""
        async with self._lock(spec.name):  # not while an invocation commits
            cursor = self._cursors[spec.name]
            if not cursor.fenced:
                fenced = cursor.advanced(fenced=True, fenced_at=min(at, cursor.invocations), fenced_by=peer)
                await asyncio.to_thread(self.store.put_cursor, spec.name, fenced)
                self._cursors[spec.name] = fenced
                log.warning("trigger %s: %s took over after invocation %d; fenced here", spec.name, peer, at)
                self.metrics.inc("trigger_fenced_total")
        self._acks.setdefault(spec.name, asyncio.Event()).set()

    # -- deploying on a peer (a pipeline stage placed by its input) ------------------------
    async def deploy_on(self, peer: str, spec: TriggerSpec) -> dict[str, Any]:
        """Deploy ``spec`` on ``peer`` (which fetches the agent from here); its view of the trigger."""
        if self.network is None:
            raise TriggerError("no_network", "this node has no network to deploy on a peer", 503)
        wire = _bounded(spec.wire())
        try:
            reply = parse_deployed(await self.network.request(peer, PROTOCOL, Deploy(wire).encode(),
                                                              timeout=DEPLOY_SECONDS))  # fmt: skip
            if (
                reply.error == "bad_request"
                and "unknown fields" in reply.detail
                and ("regions" in wire or "placement" in wire)
            ):
                # a node from before regions were stored with a trigger: it runs it all the same (placement
                # chose it inside them), only its record lacks them, so it cannot tell a later standby
                bare = {key: value for key, value in wire.items() if key not in ("regions", "placement")}
                log.info("trigger %s: peer %s predates stored regions; deployed without them", spec.name, peer)
                reply = parse_deployed(await self.network.request(peer, PROTOCOL, Deploy(bare).encode(),
                                                                  timeout=DEPLOY_SECONDS))  # fmt: skip
        except (NetworkError, TriggerProtocolError) as exc:
            raise TriggerError(
                "peer_unreachable", f"peer {peer} did not deploy trigger {spec.name}: {exc}", 502
            ) from None
        if reply.error or reply.view is None:
            status = reply.status if reply.status in (400, 404, 409, 503) else 502  # what this API documents
            code = reply.error if re.fullmatch(r"[a-z_]{1,64}", reply.error) else "peer_error"
            raise TriggerError(code, f"peer {peer}: {reply.detail}", status)
        return reply.view

    async def _deploy_from(self, peer: str, asked: Deploy) -> Deployed:
        """A peer deploys a trigger here: checked as this node's API checks one, the agent fetched from
        the peer; a trigger of that name that this node's API (or another peer) deployed is not replaced."""
        try:
            agent_text = asked.spec.get("agent")
            agent = CID.parse(agent_text) if isinstance(agent_text, str) and len(agent_text) <= 200 else None
        except (InvalidCIDError, ValueError):
            agent = None
        if agent is None:
            return Deployed(400, "bad_agent", "agent is the agent bundle's CID", None)
        body = {key: value for key, value in asked.spec.items() if value not in (None, "", 0)}
        body.pop("deployed_by", None)
        asked_regions, asked_placement = body.pop("regions", None), body.pop("placement", None)
        try:
            spec = replace(parse_spec(body | {"agent": str(agent)}, agent), deployed_by=peer,
                           regions=parse_regions(asked_regions))  # fmt: skip
            if asked_placement is not None:
                spec = replace(spec, placement=await self._placed_here(spec, asked_placement))
            held = self._specs.get(spec.name)
            if held is not None and held.deployed_by != peer:
                raise TriggerError("name_taken", f"this node runs its own trigger {spec.name}; pick another name", 409)
            theirs = sum(1 for other in self._specs.values() if other.deployed_by == peer)
            if held is None and theirs >= MAX_PEER_TRIGGERS:
                raise TriggerError(
                    "too_many_triggers", f"a peer deploys at most {MAX_PEER_TRIGGERS} triggers here", 409
                )
            if await asyncio.to_thread(self.blocks.missing_blocks, agent):
                if self.exchange is None:
                    raise TriggerError("no_agent", f"agent {agent} is not here and this node cannot fetch it", 404)
                await self.exchange.fetch(agent, [peer], max_bytes=MAX_AGENT_BYTES)
            await asyncio.to_thread(self.blocks.pin, agent, f"trigger {spec.name} agent")
            await asyncio.to_thread(open_bundle, self.blocks, agent)
            view = await self.deploy(spec)
        except TriggerError as exc:
            return Deployed(exc.status, exc.code, str(exc), None)
        except ManifestError as exc:
            return Deployed(400, "bad_agent", f"agent {agent}: {exc}", None)
        except Exception as exc:  # the fetch: its errors are many kinds, each a reason to give back
            return Deployed(502, "agent_not_fetched", f"agent {agent} not fetched from {peer}: {exc}"[:500], None)
        log.info("trigger %s deployed here by %s", spec.name, peer)
        return Deployed(201, "", "", view)

    async def _placed_here(self, spec: TriggerSpec, value: Any) -> dict[str, Any]:
        """The placement a peer sent with a deploy (checked field by field), the chosen holder's role as
        this node's store says it: what this trigger's record keeps."""
        placement = Placement.from_json(value)
        own = peer_id_for(bytes(self.executor.signing_key.verify_key))
        if placement.chosen.peer != own or placement.stream != spec.stream:
            raise TriggerError("bad_placement", "the placement chose another node or names another stream")
        info = await asyncio.to_thread(self.streams.store.info, spec.stream)
        if info is not None:
            placement = placement.confirmed(Role.ORIGIN if info.origin else Role.REPLICA)
        return placement.json()

    # -- standing by -------------------------------------------------------------------
    async def handle_progress(self, peer: str, request: bytes) -> list[bytes]:
        """Serve a standby: this node's receipts of a trigger after the number it asks from (which
        acknowledges them when it is the trigger's follower), or its fence after a takeover."""
        try:
            asked = parse_request(request)
        except TriggerProtocolError:
            return encode_receipts([])
        if isinstance(asked, Deploy):
            return (await self._deploy_from(peer, asked)).encode()
        spec = self._specs.get(asked.trigger)
        if isinstance(asked, Fence):
            if spec is None or not spec.follower or spec.follower != peer:
                return encode_fenced(False)
            await self._fence(spec, asked.at, peer)
            return encode_fenced(True)
        if spec is None:
            return encode_receipts([])
        if spec.follower and spec.follower == peer:
            self._acknowledge(spec.name, asked.after)
        found = await self.receipts(spec.name, asked.after, MAX_RECEIPTS)
        return encode_receipts([raw for _, raw in found])

    async def _standby_loop(self, spec: TriggerSpec) -> None:
        """Follow the active node's receipts until it stops answering, then run the trigger here."""
        misses = 0
        while True:
            if misses >= TAKEOVER_MISSES:
                refusal = await self._outside_regions(spec)  # regions are applied again, now, on failover
                if refusal is None:
                    break
                if self._held_back.get(spec.name) != refusal:
                    log.warning("trigger %s: active node %s is gone, but this standby does not take over: %s",
                                spec.name, spec.standby, refusal)  # fmt: skip
                    self.metrics.inc("trigger_takeovers_refused_total")
                self._held_back[spec.name] = refusal
                misses = TAKEOVER_MISSES - 1  # the next miss decides again; an answer follows the active node again
            cursor = self._cursors[spec.name]
            try:
                if self.network is None:
                    raise NetworkError("this node has no network to follow the active node on")
                asked = Progress(spec.name, cursor.invocations).encode()
                reply = await self.network.request(spec.standby, PROTOCOL, asked, timeout=REQUEST_SECONDS)
                raws = parse_receipts(reply)
                misses = 0
                self._held_back.pop(spec.name, None)
            except (NetworkError, TriggerProtocolError) as exc:
                misses += 1
                log.info("trigger %s: active node %s did not answer (%d): %s", spec.name, spec.standby, misses, exc)
                await asyncio.sleep(PROGRESS_SECONDS)
                continue
            taken = 0
            for adopted in adopt(spec, cursor, raws):
                if adopted.state is not None:
                    try:
                        missing = await asyncio.to_thread(self.blocks.missing_blocks, adopted.state)
                        if missing and self.exchange is not None:
                            await self.exchange.fetch(adopted.state, [spec.standby], max_bytes=MAX_STATE_BYTES)
                        await asyncio.to_thread(self.blocks.pin, adopted.state, f"trigger {spec.name} state")
                    except Exception as exc:  # not adopted: asked again next round (or never, if the node is gone)
                        log.info("trigger %s: state %s not fetched: %s", spec.name, adopted.state, exc)
                        break
                await asyncio.to_thread(self.store.commit, spec.name, adopted.raw, adopted.cursor)
                previous, self._cursors[spec.name] = self._cursors[spec.name], adopted.cursor
                if previous.state is not None and previous.state != adopted.state:
                    await asyncio.to_thread(self.blocks.unpin, previous.state)
                taken += 1
            if not taken:  # after an adoption, ask again at once: that acknowledges it to the active node
                await asyncio.sleep(PROGRESS_SECONDS)
        log.warning("trigger %s: active node %s is gone; running it here from seq %d",
                    spec.name, spec.standby, self._cursors[spec.name].seq)  # fmt: skip
        self.metrics.inc("trigger_takeovers_total")
        self._held_back.pop(spec.name, None)
        async with self._lock(spec.name):
            cursor = self._cursors[spec.name]
            taken_over = cursor.advanced(took_over=True, took_over_at=cursor.invocations)
            await asyncio.to_thread(self.store.put_cursor, spec.name, taken_over)
            self._cursors[spec.name] = taken_over
        self._promoted.add(spec.name)
        await self._taken_over_loop(spec)

    async def _taken_over_loop(self, spec: TriggerSpec) -> None:
        """Run the trigger here, and fence the old active node (it may only have been cut off)."""
        fencing = asyncio.create_task(self._fence_old_active(spec))
        try:
            await self._stream_loop(spec)
        finally:
            fencing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fencing

    async def _fence_old_active(self, spec: TriggerSpec) -> None:
        """Tell the old active node it is fenced after the receipts adopted here, until it confirms."""
        request, refused = Fence(spec.name, self._cursors[spec.name].took_over_at).encode(), False
        while self.network is not None:
            try:
                if parse_fenced(await self.network.request(spec.standby, PROTOCOL, request, timeout=REQUEST_SECONDS)):
                    log.info("trigger %s: the old active node %s confirmed its fence", spec.name, spec.standby)
                    self._fenced_peers.add(spec.name)
                    return
                if not refused:
                    refused = True
                    log.warning("trigger %s: %s does not name this node its follower; it cannot be fenced",
                                spec.name, spec.standby)  # fmt: skip
            except (NetworkError, TriggerProtocolError):
                pass
            await asyncio.sleep(FENCE_RETRY_SECONDS)

    async def _schedule_loop(self, spec: TriggerSpec) -> None:
        schedule = Schedule.parse(spec.schedule)
        while True:
            await asyncio.sleep(schedule.seconds_until_next(dt.datetime.now(dt.UTC)))
            await self._invoke(spec, None, None)
