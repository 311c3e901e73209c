"""The provider's side of the bulk path: tickets over libp2p, CAR streams over HTTP and HTTPS.

``GET /car/{cid}`` answers the whole DAG under ``cid`` as one CAR v1 stream, depth-first,
each distinct block once (what :class:`node.bulk.carstream.CarVerifier` expects). It needs a
peer ID: proven by the ``libp2p-PeerID`` handshake (:mod:`node.bulk.peerauth`; its 401s carry
the challenge, its success the ``Authentication-Info`` with the bearer) or by a ticket's token
(:mod:`node.bulk.ticket`, ``Authorization: Bearer``): 401 with the reason otherwise. The
handshake's hostname is the request's ``Host``, which must name this listener's host (and the
TLS server name, when the client sent one). Two listeners share the handler:

* plain HTTP serves public blocks only (its headers can be read off the wire, and a private
  block never travels unencrypted);
* TLS (a self-signed certificate, pinned by the ticket) serves what the serving gate lets the
  authenticated peer have. A refused or missing block met after the headers aborts the
  connection, so the fetcher sees a truncated CAR, never a complete-looking one.

A private root the reader may not have is answered exactly as a root not stored here (the
ticket for the plain listener, then 404 ``not_found`` with the same body), as
``/mycel/blocks`` answers it: an outsider learns neither the bytes nor that this node holds them.

These listeners are separate from the node API on purpose: the API binds loopback and guards
reads with the operator's token, while peers must reach the bulk path and prove a peer ID.

The walk reads LMDB in a thread of the server's own and builds the next chunk while the
previous one is written, so disk and network overlap; streams are bounded in all and per peer.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

from aiohttp import web

from node.bulk import peerauth, ticket
from node.bulk.tls import make_certificate
from node.identity import NodeIdentity
from node.metrics import Metrics
from storage.blockstore import BlockStore
from storage.car import car_header
from storage.cid import CID
from storage.dag import has_links, links_of
from storage.errors import InvalidCIDError, StorageError
from storage.varint import encode_uvarint

log = logging.getLogger("mycelnet.bulk")
CAR_TYPE = "application/vnd.ipld.car"
CHUNK = 4 << 20  # bytes of blocks per write: large enough to keep syscalls rare, small enough to bound memory
MAX_STREAMS = 8
MAX_STREAMS_PER_PEER = 2
THREADS = 4
AUTH_PATH = "/http-peer-id-auth/"
T = TypeVar("T")


class BulkGate(Protocol):
    """The privacy rules (:class:`node.privacy.gate.ServingGate`); peer None is an unauthenticated reader."""

    def may_send(self, peer: str | None, cid: CID) -> bool: ...

    def policy_for(self, root: CID) -> bytes | None: ...


class _Refused(Exception):
    pass


class BulkServer:
    def __init__(self, store: BlockStore, gate: BulkGate, identity: NodeIdentity, metrics: Metrics, directory: Path):
        self.store = store
        self.gate = gate
        self.identity = identity
        self.metrics = metrics
        self.directory = directory
        self.http_url = ""  # set by start(): what the announcement's ``car`` field says
        self.https_url = ""
        self._cert_sha256 = b""
        self._io = ThreadPoolExecutor(THREADS, thread_name_prefix="bulk-serve")
        self._runner: web.AppRunner | None = None
        self._streams: dict[str, int] = {}
        self._hostnames: set[str] = set()
        self.peerauth = peerauth.PeerAuthServer(identity.sign, identity.public_key, lambda: self._hostnames)

    async def _off_loop(self, work: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, work, *args)

    async def start(self, bind: str, advertised: str) -> None:
        """Listen on ``bind`` (ephemeral ports, plain and TLS); URLs name ``advertised``."""
        certificate = await self._off_loop(make_certificate, self.directory)
        self._cert_sha256 = certificate.sha256
        certificate.context.sni_callback = _remember_sni
        app = web.Application(client_max_size=4096)
        app.add_routes(
            [
                web.get("/car/{cid}", self._get_car),
                web.get(AUTH_PATH, self._auth_only),  # the spec's authentication endpoint: the handshake, no data
                web.get("/.well-known/libp2p/protocols", self._protocols),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        plain = web.TCPSite(self._runner, bind, 0)
        secure = web.TCPSite(self._runner, bind, 0, ssl_context=certificate.context)
        await plain.start()
        await secure.start()
        ports = [address[1] for address in self._runner.addresses]
        host = f"[{advertised}]" if ":" in advertised else advertised
        self._hostnames = {name.lower() for name in (bind, advertised)}  # what a Host header may name
        self.http_url, self.https_url = f"http://{host}:{ports[0]}", f"https://{host}:{ports[1]}"
        log.info("bulk CAR path on %s and %s", self.http_url, self.https_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._io.shutdown(wait=True, cancel_futures=True)

    async def ticket(self, peer: str, request: bytes) -> list[bytes]:
        """The ``/mycel/car-ticket/1.0.0`` handler: a token for ``peer`` (authenticated by libp2p)."""
        root = ticket.root_of_request(request)
        if root is None or not self.http_url:
            return []
        private = await self._off_loop(self._private_for, peer, root)
        sign = self.identity.sign
        if private:
            issued = ticket.Ticket(
                self.https_url, ticket.issue(sign, self.identity.peer_id, peer, "tls"), self._cert_sha256
            )
        else:
            issued = ticket.Ticket(self.http_url, ticket.issue(sign, self.identity.peer_id, peer, "http"), None)
        self.metrics.inc("bulk_tickets_issued_total")
        return [issued.encode()]

    def _private_for(self, peer: str, root: CID) -> bool:
        """Whether ``peer`` gets the TLS ticket: a private root it may have. One it may not have is
        given the plain ticket, as for a root not held here (in a store thread)."""
        return self.gate.policy_for(root) is not None and self.gate.may_send(peer, root)

    def _authenticate(self, request: web.Request, tls: bool) -> tuple[str | None, dict[str, str], web.Response | None]:
        """(peer, headers for the answer, None) or (None, {}, the 401): a ticket or the spec's handshake."""
        header = request.headers.get("Authorization")
        if header is not None and header[:7].lower() == "bearer ":
            try:
                return ticket.check(header, self.identity.peer_id, "tls" if tls else "http"), {}, None
            except ticket.TicketError as exc:
                self.metrics.inc("bulk_refused_total", reason="ticket")
                return None, {}, _error(401, "bad_ticket", str(exc))
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        sni = getattr(ssl_object, _SNI, None)
        verdict = self.peerauth.authenticate(header, request.headers.get("Host", ""), tls, sni)
        if verdict.peer is not None:
            self.metrics.inc("bulk_peer_auth_total", step="bearer" if not verdict.headers else "handshake")
            return verdict.peer, verdict.headers, None
        if header is None and "WWW-Authenticate" in verdict.headers:
            error, detail = "unauthenticated", f"authenticate with {peerauth.SCHEME} (or a ticket from libp2p)"
        elif verdict.reason:
            self.metrics.inc("bulk_refused_total", reason="peer_auth")
            error, detail = "bad_peer_auth", verdict.reason
        else:  # the client-initiated handshake's first step: the server's proof and its challenge
            error, detail = "authenticating", "answer the challenge in WWW-Authenticate"
        return None, {}, _error(401, error, detail, verdict.headers)

    async def _protocols(self, request: web.Request) -> web.Response:
        return web.json_response({"protocols": {peerauth.PROTOCOL_ID: {"path": AUTH_PATH}}})

    async def _auth_only(self, request: web.Request) -> web.Response:
        """Only the handshake (a client may authenticate the server before its real request)."""
        tls = request.transport is not None and request.transport.get_extra_info("ssl_object") is not None
        _, info, refusal = self._authenticate(request, tls)
        return refusal if refusal is not None else web.Response(status=200, headers=info)

    async def _get_car(self, request: web.Request) -> web.StreamResponse:
        tls = request.transport is not None and request.transport.get_extra_info("ssl_object") is not None
        peer, info, refusal = self._authenticate(request, tls)
        if refusal is not None:
            return refusal
        assert peer is not None
        try:
            root = CID.parse(request.match_info["cid"])
        except InvalidCIDError as exc:
            return _error(400, "invalid_cid", str(exc), info)
        reader = peer if tls else None  # plain HTTP: only what anyone may read
        if sum(self._streams.values()) >= MAX_STREAMS or self._streams.get(peer, 0) >= MAX_STREAMS_PER_PEER:
            self.metrics.inc("bulk_refused_total", reason="busy")
            return _error(429, "busy", f"at most {MAX_STREAMS_PER_PEER} bulk streams per peer; retry later", info)
        self._streams[peer] = self._streams.get(peer, 0) + 1  # taken before the first await: no race past the bound
        try:
            allowed = await self._off_loop(self.gate.may_send, reader, root)
            if not allowed:  # counted here, never told: the same answer as for a root not held
                self.metrics.inc("bulk_refused_total", reason="private")
            if not allowed or not await self._off_loop(self.store.has, root):
                return _error(404, "not_found", f"{root} is not stored here", info)
            return await self._stream(request, root, reader, info)
        finally:
            self._streams[peer] -= 1
            if not self._streams[peer]:
                del self._streams[peer]

    async def _stream(
        self, request: web.Request, root: CID, reader: str | None, info: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": CAR_TYPE, "Cache-Control": "no-store", **info})
        await response.prepare(request)
        await response.write(car_header([root]))
        walk = _Walk(self.store, self.gate, reader, root)
        sent = 0
        upcoming = asyncio.ensure_future(self._off_loop(walk.next_chunk))
        try:
            while True:
                try:
                    chunk = await upcoming
                except (_Refused, StorageError) as exc:  # the status line is out: only an abort is honest
                    log.warning("aborted the bulk CAR of %s after %d bytes: %s", root, sent, exc)
                    self.metrics.inc("bulk_refused_total", reason="aborted")
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                if chunk is None:
                    break
                upcoming = asyncio.ensure_future(self._off_loop(walk.next_chunk))  # read the next while this goes
                body, blocks, block_bytes = chunk
                await response.write(body)
                sent += len(body)
                self.metrics.inc("blocks_served_total", blocks)  # the same counters as /mycel/blocks
                self.metrics.inc("bytes_out_total", block_bytes)
        finally:
            if not upcoming.done():
                upcoming.cancel()
        await response.write_eof()
        self.metrics.inc("bulk_bytes_out_total", sent)
        return response


class _Walk:
    """The DAG depth-first, each block once, gated and read from LMDB (one chunk per call, in a thread)."""

    def __init__(self, store: BlockStore, gate: BulkGate, reader: str | None, root: CID) -> None:
        self.store, self.gate, self.reader = store, gate, reader
        self._stack = [root]
        self._seen: set[CID] = set()

    def next_chunk(self) -> tuple[bytes, int, int] | None:
        """The next sections joined, with how many blocks and block bytes they hold; None at the end."""
        parts: list[bytes] = []
        size = count = 0
        while self._stack and size < CHUNK:
            cid = self._stack.pop()
            if cid in self._seen:
                continue
            self._seen.add(cid)
            if not self.gate.may_send(self.reader, cid):
                raise _Refused(f"{cid} is private and not for this reader")
            data = self.store.get(cid)  # as the store is configured (verify_on_get): never a known-bad block
            key = bytes(cid)
            parts += (encode_uvarint(len(key) + len(data)), key, data)
            size += len(data)
            count += 1
            if has_links(cid):
                self._stack.extend(reversed(links_of(cid, data)))
        return (b"".join(parts), count, size) if parts else None


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


_SNI = "mycel_sni"  # where the TLS server name the client sent is kept on its SSL object


def _remember_sni(ssl_object: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: ssl.SSLContext) -> None:
    """The SNI callback: keep the name the client asked for, for the hostname check of the handshake."""
    if name is not None:
        setattr(ssl_object, _SNI, name)
