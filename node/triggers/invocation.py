"""One invocation of a triggered agent (blocking: run it in a thread).

Inputs: ``/in/batch`` (the consumed entries as JSON, see :func:`batch_document`),
``/in/state`` (the state the previous invocation left, when there is one) and
``/in/request`` (the body of an HTTP invocation). The agent writes its new state to
``/out/state`` and what it answers (or appends to the output stream) to ``/out/output``.

The executor signs a plain receipt; this module adds the trigger's part (entries
consumed, state left) and signs again with the same node key, so the receipt anyone
checks names exactly which entries this invocation consumed and what state it produced.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agents import receipt as receipts
from agents.bundle import open_bundle
from agents.executor import Executor, JobOutcome
from agents.runtime.base import RunRequest
from node.triggers.model import Cursor, TriggerSpec
from storage.blockstore import BlockStore
from storage.cid import CID, DAG_CBOR
from storage.errors import StorageError, UnixFSError
from storage.files import add_stream, cat
from storage.streamentry import Entry
from storage.unixfs.exporter import file_size, list_directory

MAX_ANSWER = 1 << 20  # output bytes an invocation hands back in its answer (beyond: by CID only)


@dataclass(frozen=True)
class Invocation:
    outcome: JobOutcome
    receipt: bytes
    receipt_cid: CID
    state: CID | None
    output: bytes | None  # /out/output when it is a file of at most MAX_ANSWER bytes
    output_cid: CID | None


def job_id(node: str, name: str, invocation: int) -> str:
    """The same id for a re-run of an invocation that never committed (after a crash)."""
    return hashlib.sha256(f"trigger:{node}:{name}:{invocation}".encode()).hexdigest()[:32]


def batch_document(stream: str, entries: Sequence[Entry]) -> bytes:
    """``/in/batch``: the stream, the seq range and each entry (payload in base64, and as text when UTF-8)."""
    items = []
    for entry in entries:
        item: dict[str, object] = {"seq": entry.seq, "cid": str(entry.cid), "time": entry.time}
        if entry.payload is not None:
            item["payload"] = base64.b64encode(entry.payload).decode()
            with contextlib.suppress(UnicodeDecodeError):
                item["text"] = entry.payload.decode()
        else:
            item["payload_cid"] = str(entry.payload_cid)
        items.append(item)
    first, last = (entries[0].seq, entries[-1].seq) if entries else (0, 0)
    return json.dumps({"stream": stream, "first_seq": first, "last_seq": last, "entries": items}).encode()


def _add(store: BlockStore, data: bytes) -> CID:
    return add_stream(store, io.BytesIO(data), pin=False).cid


def run_invocation(
    executor: Executor,
    store: BlockStore,
    spec: TriggerSpec,
    cursor: Cursor,
    entries: Sequence[Entry] | None,
    request: bytes | None,
    cancel: threading.Event | None = None,
) -> Invocation:
    number = cursor.invocations + 1
    inputs: dict[str, CID] = {}
    if entries is not None:
        inputs["batch"] = _add(store, batch_document(spec.stream, entries))
    if cursor.state is not None:
        inputs["state"] = cursor.state
    if request is not None:
        inputs["request"] = _add(store, request)
    bundle = open_bundle(store, spec.agent)
    outcome = executor.run(RunRequest(job_id(executor.node, spec.name, number), bundle, inputs, cancel=cancel))
    state, output, output_cid = cursor.state, None, None
    if outcome.outcome.is_ok and outcome.result is not None:
        links = dict(_links(store, outcome.result))
        state = links.get("state")
        output_cid = links.get("output")
        if output_cid is not None:
            output = _small_file(store, output_cid)
    consumed = tuple(entry.cid for entry in entries or ())
    first, last = (entries[0].seq, entries[-1].seq) if entries else (0, 0)
    run = receipts.TriggerRun(spec.name, spec.stream if entries else "", first, last, consumed, state)
    record = replace(receipts.verify(outcome.receipt), trigger=run)
    signed = receipts.sign(record, executor.signing_key)
    return Invocation(outcome, signed, CID.for_block(signed, DAG_CBOR), state, output, output_cid)


def _links(store: BlockStore, result: CID) -> list[tuple[str, CID]]:
    try:
        return list_directory(store.get, result)
    except (UnixFSError, StorageError):
        return []


def _small_file(store: BlockStore, cid: CID) -> bytes | None:
    try:
        if file_size(store.get, cid) > MAX_ANSWER:
            return None
        return b"".join(cat(store, cid))
    except (UnixFSError, StorageError):
        return None  # a directory, or not a file the answer can carry
