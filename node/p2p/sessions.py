"""Request sessions: many requests to one peer on one long-lived libp2p stream, each tagged.

A request stream of its own per request costs a Yamux open and close and a multistream-select
negotiation (several frames each way, each a Noise message and a trio socket operation) before
a byte of the request moves: under 32 jobs in flight that was a large share of both nodes'
libp2p CPU. A session protocol keeps one stream per peer (and protocol) open, and every
request and every answer is one length-prefixed frame on it:

- request: ``uvarint(id) payload`` (``payload``: the protocol's request, as on a stream of its own)
- answer: ``uvarint(id) uvarint(count)`` then ``count`` length-prefixed answer frames;
  ``count`` 0 says the serving side failed that request (what a reset stream says otherwise).

Ids are chosen by the requester, one per request, and answers come back in any order. The
serving side runs up to ``max_in_flight`` requests of one stream at once and stops reading
while that many run (the requester then waits, nothing queues without bound); a peer holds at
most ``max_streams_per_peer`` session streams here. Everything read is bounded: request and
answer frames by size, ids by range, answer counts by :data:`MAX_ANSWER_FRAMES`; a malformed
frame ends the stream (every request waiting on it fails as from a dead stream).

Runs in the trio thread with anyio, like :mod:`node.p2p.host`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from node.errors import NetworkError
from node.p2p.framing import Frame, FrameReader, frame
from storage.errors import CodecError
from storage.varint import decode_uvarint, encode_uvarint

log = logging.getLogger("mycelnet.p2p")

MAX_ID = (1 << 53) - 1
MAX_ANSWER_FRAMES = 16
ENVELOPE = 32  # bytes a frame may carry beyond its payloads: the id, the count, their lengths
WRITE_TIMEOUT = 30.0  # a frame the peer does not take within this ends the stream (a partial one cannot be undone)

RequestHandler = Callable[[str, bytes], Coroutine[Any, Any, Sequence[Frame]]]  # as the host's handlers


@dataclass(frozen=True)
class SessionProtocol:
    """A request protocol served on long-lived streams (see the module docstring)."""

    handler: RequestHandler
    max_request: int
    max_in_flight: int = 64  # requests of one stream handled at once
    max_streams_per_peer: int = 4  # a requester needs one; a reconnect may briefly hold two
    max_streams: int = 256  # over all peers


def _uvarint(data: bytes | memoryview, pos: int, limit: int) -> tuple[int, int]:
    try:
        value, pos = decode_uvarint(data, pos)
    except CodecError as exc:
        raise NetworkError(f"session frame: {exc}") from None
    if value > limit:
        raise NetworkError(f"session frame: {value} is over the limit of {limit}")
    return value, pos


def request_frame(request_id: int, payload: bytes) -> bytes:
    return frame(encode_uvarint(request_id) + payload)


def parse_request(data: bytes) -> tuple[int, bytes]:
    request_id, pos = _uvarint(data, 0, MAX_ID)
    return request_id, data[pos:]


def answer_frame(request_id: int, frames: list[bytes]) -> bytes:
    parts = [encode_uvarint(request_id), encode_uvarint(len(frames))]
    for item in frames:
        parts += [encode_uvarint(len(item)), item]
    return frame(b"".join(parts))


def parse_answer(data: bytes) -> tuple[int, list[bytes] | None]:
    """(request id, its answer frames); None for frames: the serving side failed the request."""
    view = memoryview(data)
    request_id, pos = _uvarint(view, 0, MAX_ID)
    count, pos = _uvarint(view, pos, MAX_ANSWER_FRAMES)
    frames = []
    for _ in range(count):
        size, pos = _uvarint(view, pos, len(data) - pos)
        frames.append(bytes(view[pos : pos + size]))
        pos += size
    if pos != len(data):
        raise NetworkError("session frame: bytes after the last answer frame")
    return request_id, frames if count else None


async def serve(
    stream: Any,
    peer: str,
    spec: SessionProtocol,
    call: Callable[[Coroutine[Any, Any, Sequence[Frame]]], Awaitable[Sequence[Frame]]],
    max_answer: int,
) -> None:
    """Serve one inbound session stream until the peer closes it; ``call`` runs a handler
    coroutine where it belongs (the asyncio loop, through the bridge)."""
    reader = FrameReader(stream, spec.max_request + ENVELOPE)
    writing = anyio.Lock()
    slots = anyio.Semaphore(spec.max_in_flight)

    async def one(request_id: int, payload: bytes) -> None:
        try:
            try:
                frames = await call(spec.handler(peer, payload))
                answer = answer_frame(request_id, [f if isinstance(f, bytes) else b"".join(f) for f in frames])
                if len(answer) > max_answer:
                    raise NetworkError(f"an answer of {len(answer)} bytes is over {max_answer}")
            except Exception as exc:  # the requester reads a failed request, the stream goes on
                log.info("session request from %s failed: %s", peer, exc)
                answer = answer_frame(request_id, [])
            with anyio.CancelScope(shield=True), anyio.fail_after(WRITE_TIMEOUT):
                async with writing:
                    await stream.write(answer)
        finally:
            slots.release()

    async with anyio.create_task_group() as group:
        while (item := await reader.read_frame()) is not None:
            request_id, payload = parse_request(item)
            await slots.acquire()  # a requester with max_in_flight running waits; nothing queues here
            group.start_soon(one, request_id, payload)


@dataclass(eq=False)
class _Waiter:
    done: anyio.Event = field(default_factory=anyio.Event)
    frames: list[bytes] | None = None
    error: str = ""


@dataclass(eq=False)
class _Session:
    stream: Any
    pending: dict[int, _Waiter] = field(default_factory=dict)
    writing: anyio.Lock = field(default_factory=anyio.Lock)
    next_id: int = 1
    closed: bool = False


class SessionPool:
    """The requester's side: one session per (peer, protocol), opened at the first request.

    ``open_stream(peer, protocol, addrs)`` opens a stream (raising what opening a stream raises, such
    as ProtocolNotSupported); ``spawn`` starts the session's reader in the host's task group.
    A session ends with its stream (the peer closed it, the connection went, a malformed frame)
    and every request waiting on it fails with NetworkError; the next request opens a new one.
    """

    def __init__(
        self,
        open_stream: Callable[[str, str, Sequence[str]], Awaitable[Any]],
        spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], None],
        max_answer: int,
    ) -> None:
        self._open_stream = open_stream
        self._spawn = spawn
        self.max_answer = max_answer
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._opening: dict[tuple[str, str], anyio.Lock] = {}
        self.opened = 0  # session streams opened, in all (a plain int, read by tests and metrics)

    def __len__(self) -> int:
        return len(self._sessions)

    async def request(self, peer: str, protocol: str, payload: bytes, addrs: Sequence[str] = ()) -> list[bytes]:
        """Send ``payload`` on the peer's session and wait for its answer frames (the caller
        bounds the wait; a cancelled request's late answer is dropped)."""
        session = await self._session(peer, protocol, addrs)
        request_id = session.next_id
        session.next_id = 1 if request_id >= MAX_ID else request_id + 1
        waiter = _Waiter()
        session.pending[request_id] = waiter
        try:
            await self._write(session, request_frame(request_id, payload))
            await waiter.done.wait()
        finally:
            session.pending.pop(request_id, None)
        if waiter.frames is None:
            raise NetworkError(waiter.error or f"{peer} failed the {protocol} request")
        return waiter.frames

    async def _session(self, peer: str, protocol: str, addrs: Sequence[str]) -> _Session:
        key = (peer, protocol)
        session = self._sessions.get(key)
        if session is not None and not session.closed:
            return session
        lock = self._opening.setdefault(key, anyio.Lock())
        async with lock:  # requests racing in at once share the one stream opened
            session = self._sessions.get(key)
            if session is None or session.closed:
                session = _Session(await self._open_stream(peer, protocol, addrs))
                self.opened += 1
                self._sessions[key] = session
                self._spawn(lambda: self._read(key, session))
        return session

    async def _write(self, session: _Session, data: bytes) -> None:
        if session.closed:
            raise NetworkError("the session stream has closed")
        # shielded: a frame half written (a request timing out mid-write) would corrupt the stream
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(WRITE_TIMEOUT):
                    async with session.writing:
                        await session.stream.write(data)
            except Exception as exc:
                session.closed = True
                with contextlib.suppress(Exception):
                    await session.stream.reset()
                raise NetworkError(f"writing to the session stream failed: {type(exc).__name__}: {exc}") from None

    async def _read(self, key: tuple[str, str], session: _Session) -> None:
        why = "the peer closed the session stream"
        try:
            reader = FrameReader(session.stream, self.max_answer + ENVELOPE)
            while (item := await reader.read_frame()) is not None:
                request_id, frames = parse_answer(item)
                waiter = session.pending.pop(request_id, None)
                if waiter is not None:  # None: it timed out and went
                    waiter.frames = frames
                    waiter.done.set()
        except Exception as exc:  # a dead connection or a malformed frame: the session is over
            why = f"the session stream failed: {type(exc).__name__}: {exc}"
        finally:
            session.closed = True
            if self._sessions.get(key) is session:
                del self._sessions[key]
                lock = self._opening.get(key)
                if lock is not None and not lock.locked():
                    del self._opening[key]
            for waiter in session.pending.values():
                waiter.error = why
                waiter.done.set()
            session.pending.clear()
            with anyio.CancelScope(shield=True), anyio.move_on_after(1), contextlib.suppress(Exception):
                await session.stream.reset()
