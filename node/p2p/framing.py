"""Length-prefixed frames on a libp2p stream: ``varint(len) payload``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeAlias

from node.errors import NetworkError
from storage.varint import encode_uvarint

MAX_FRAME = 8 << 20
READ_SIZE = 4 << 20  # the least asked of one read: Yamux then hands over its whole buffer, no front-trimming


Frame: TypeAlias = bytes | tuple[bytes, ...]
"""One frame's payload, whole or in parts (joined only into the write: a block need not be
copied behind its header first)."""


def frame_size(payload: Frame) -> int:
    return len(payload) if isinstance(payload, bytes) else sum(len(part) for part in payload)


class ByteStream(Protocol):
    async def read(self, n: int | None = None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


def frame(payload: bytes) -> bytes:
    return encode_uvarint(len(payload)) + payload


def coalesced(payloads: Iterable[Frame], write_size: int) -> Iterator[bytes]:
    """Frames of ``payloads`` joined into writes of about ``write_size`` bytes, each byte copied once.

    py-libp2p streams are ~3x faster with 1 MiB writes than with small ones (FIELD-NOTES.md).
    A payload in parts is framed as their concatenation, without joining them first.
    """
    parts: list[bytes] = []
    size = 0
    for payload in payloads:
        length = frame_size(payload)
        parts.append(encode_uvarint(length))
        if isinstance(payload, bytes):
            parts.append(payload)
        else:
            parts.extend(payload)
        size += length
        if size >= write_size:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


class FrameReader:
    """Hands out whole frames from a stream's reads.

    Each payload is copied once: a frame that lies inside one read is sliced out of it,
    one that spans reads is joined from them. (A bytearray buffer grown by ``+=`` and
    trimmed from the front copied every byte three times or more.)
    """

    def __init__(self, stream: ByteStream, max_frame: int = MAX_FRAME) -> None:
        self._stream = stream
        self._max_frame = max_frame
        self._chunk = b""
        self._pos = 0  # bytes of _chunk already handed out

    async def _refill(self, size: int) -> bool:
        chunk = await self._stream.read(max(size, READ_SIZE))
        if not chunk:
            return False
        self._chunk, self._pos = chunk, 0
        return True

    async def _take(self, size: int) -> bytes | None:
        """Exactly ``size`` bytes, or None when the stream ends first."""
        start = self._pos
        if len(self._chunk) - start >= size:
            self._pos = start + size
            if start == 0 and size == len(self._chunk):
                return self._chunk
            return self._chunk[start : start + size]
        parts: list[bytes | memoryview] = [memoryview(self._chunk)[start:]]
        need = size - (len(self._chunk) - start)
        while need:
            if not await self._refill(need):
                return None
            if len(self._chunk) <= need:
                parts.append(self._chunk)
                need -= len(self._chunk)
                self._pos = len(self._chunk)
            else:
                parts.append(memoryview(self._chunk)[:need])
                self._pos = need
                need = 0
        return b"".join(parts)

    async def read_frame(self) -> bytes | None:
        """The next frame, or None at a clean end of stream."""
        length = shift = 0
        first = True
        while True:
            byte = await self._take(1)
            if byte is None:
                if first:
                    return None
                raise NetworkError("stream ended inside a frame header")
            first = False
            length |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                break
            shift += 7
            if shift > 35:
                raise NetworkError("frame length varint too long")
        if length > self._max_frame:
            raise NetworkError(f"peer sent a {length}-byte frame, over the {self._max_frame}-byte limit")
        payload = await self._take(length)
        if payload is None:
            raise NetworkError("stream ended inside a frame")
        return payload
