"""An in-process stand-in for a node's HTTP API, for the client behaviour a real node never shows.

A real node does not send tampered content, close an event stream on cue or hold it open until
a test says so; this one does, so the SDK and the CLI can be tested on exactly those paths. It
runs an aiohttp server on its own thread and event loop, so blocking clients (SyncClient, a
``mycel`` subprocess) and async ones can both talk to it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.signing
from aiohttp import web

from agents import receipt as receipts
from agents.bundle import agent_id_of
from storage.cid import CID
from storage.peerid import peer_id_for
from storage.unixfs.importer import NullSink, import_bytes, import_path

SIGNING_KEY = nacl.signing.SigningKey(bytes(range(32)))
PEER_ID = peer_id_for(bytes(SIGNING_KEY.verify_key))


@dataclass
class Blob:
    body: bytes
    content_type: str


@dataclass
class FakeNode:
    """State the handlers serve; tests change it (and read ``requests``) between calls."""

    url: str = ""
    token: str | None = None
    blobs: dict[str, Blob] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipts: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    peers: list[dict[str, Any]] = field(default_factory=list)  # GET /v1/peers answers these
    # called (on a worker thread) between the event stream's events; may block to hold the stream open
    between_events: Callable[[int], None] = lambda index: None
    # the states a job submitted with POST /v1/jobs goes through
    submitted_states: list[str] = field(default_factory=lambda: ["queued", "running", "done"])
    loop: asyncio.AbstractEventLoop | None = None

    def add_file(self, data: bytes) -> CID:
        cid = import_bytes(data, NullSink()).cid
        self.blobs[str(cid)] = Blob(data, "application/octet-stream")
        return cid

    def add_directory(self, directory: Path) -> CID:
        cid = import_path(directory, NullSink()).cid
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for path in sorted(directory.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
        self.blobs[str(cid)] = Blob(archive.getvalue(), "application/x-tar")
        return cid

    def add_job(self, job_id: str, states: list[str], result: CID | None = None) -> dict[str, Any]:
        """A job that went through ``states``; with a result, a receipt signed for it."""
        done = states[-1] == "done"
        job = {
            "job_id": job_id,
            "state": states[-1],
            "result": str(result) if result and done else None,
            "results": {PEER_ID: str(result)} if result else {},
            "receipts": {PEER_ID: "receipt"} if result else {},
            "transitions": [{"state": s, "at": i, "reason": f"reason {i}"} for i, s in enumerate(states)],
        }
        self.jobs[job_id] = job
        if result is not None:
            record = receipts.Receipt(job_id, CID.for_block(b"agent"), {}, result, "ok", "wasm", "1",
                                      receipts.Usage(0.1, 1, 0.2, 3, 4), 1.0, 2.0, PEER_ID)  # fmt: skip
            self.receipts[job_id] = receipts.sign(record, SIGNING_KEY)
        return job


def _app(node: FakeNode) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        node.requests.append(f"{request.method} {request.path}")
        if node.token is not None and request.headers.get("Authorization") != f"Bearer {node.token}":
            return web.json_response({"error": "unauthorized", "detail": "a bearer token is required"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    def missing(what: str) -> web.Response:
        return web.json_response({"error": "not_found", "detail": f"no {what} on this node"}, status=404)

    async def node_info(request: web.Request) -> web.Response:
        return web.json_response({"peer_id": PEER_ID, "version": "0", "region": "test", "addrs": []})

    async def peers(request: web.Request) -> web.Response:
        return web.json_response({"peers": node.peers})

    async def post_blob(request: web.Request) -> web.Response:
        body = await request.read()
        if request.content_type == "application/x-tar":
            with tempfile.TemporaryDirectory() as scratch:
                with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                    tar.extractall(scratch, filter="data")
                cid = node.add_directory(Path(scratch))
        else:
            cid = node.add_file(body)
        return web.json_response({"cid": str(cid)})

    async def get_blob(request: web.Request) -> web.Response:
        blob = node.blobs.get(request.match_info["cid"])
        if blob is None:
            return missing("blob")
        return web.Response(body=blob.body, content_type=blob.content_type)

    async def get_job(request: web.Request) -> web.Response:
        job = node.jobs.get(request.match_info["id"])
        return web.json_response(job) if job else missing("job")

    async def post_job(request: web.Request) -> web.Response:
        body = await request.json()
        job_id = body.get("job_id") or os.urandom(16).hex()
        job = node.add_job(job_id, node.submitted_states, node.add_file(b"result\n"))
        return web.json_response({"job_id": job["job_id"], "state": "queued"}, status=201)

    async def delete_job(request: web.Request) -> web.Response:
        job = node.jobs.get(request.match_info["id"])
        if job is None:
            return missing("job")
        if job["state"] not in ("done", "failed", "cancelled"):
            job["state"] = "cancelled"
            job["transitions"].append({"state": "cancelled", "at": 9, "reason": "cancelled by the client"})
        return web.json_response(job)

    async def events(request: web.Request) -> web.StreamResponse:
        job = node.jobs.get(request.match_info["id"])
        if job is None:
            return missing("job")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, transition in enumerate(job["transitions"]):
            if index:
                await asyncio.to_thread(node.between_events, index)
            event = {"state": transition["state"], "reason": transition["reason"]}
            await response.write(f"event: state\ndata: {json.dumps(event)}\n\n".encode())
        return response

    async def post_agent(request: web.Request) -> web.Response:
        with tempfile.TemporaryDirectory() as scratch:
            with tarfile.open(fileobj=io.BytesIO(await request.read())) as tar:
                tar.extractall(scratch, filter="data")
            return web.json_response({"agent": str(agent_id_of(Path(scratch)))}, status=201)

    async def providers(request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        return web.json_response({"cid": cid, "providers": [PEER_ID] if cid in node.blobs else []})

    async def logs(request: web.Request) -> web.Response:
        job = node.jobs.get(request.match_info["id"])
        return web.json_response({"job_id": job["job_id"], "logs": job.get("logs", {})}) if job else missing("job")

    async def receipt(request: web.Request) -> web.Response:
        signed = node.receipts.get(request.match_info["id"])
        return web.Response(body=signed, content_type="application/cbor") if signed else missing("receipt")

    app = web.Application(middlewares=[record], client_max_size=1 << 30)
    app.add_routes([
        web.get("/v1/node", node_info),
        web.get("/v1/peers", peers),
        web.post("/v1/blobs", post_blob),
        web.get("/v1/blobs/{cid}", get_blob),
        web.get("/v1/blobs/{cid}/providers", providers),
        web.post("/v1/jobs", post_job),
        web.get("/v1/jobs/{id}", get_job),
        web.delete("/v1/jobs/{id}", delete_job),
        web.get("/v1/jobs/{id}/events", events),
        web.get("/v1/jobs/{id}/receipt", receipt),
        web.post("/v1/agents", post_agent),
        web.get("/v1/jobs/{id}/logs", logs),
    ])  # fmt: skip
    return app


@contextmanager
def fake_node() -> Iterator[FakeNode]:
    """A FakeNode serving on 127.0.0.1 until the block ends."""
    node = FakeNode()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_app(node))
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        node.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the fake node did not start"
    node.loop = loop
    try:
        yield node
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextmanager
def not_http() -> Iterator[str]:
    """A TCP port that answers like a libp2p listener (multistream-select), not HTTP; yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def answer() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"\x13/multistream/1.0.0\n")
                conn.recv(4096)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()
