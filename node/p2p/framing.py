"""Length-prefixed frames on a libp2p stream: ``varint(len) payload``."""

from __future__ import annotations

from typing import Protocol

from node.errors import NetworkError
from storage.varint import encode_uvarint

MAX_FRAME = 8 << 20


class ByteStream(Protocol):
    async def read(self, n: int | None = None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


def frame(payload: bytes) -> bytes:
    return encode_uvarint(len(payload)) + payload


class FrameReader:
    """Buffers a stream's reads and hands out whole frames."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            chunk = await self._stream.read(max(size - len(self._buffer), 1 << 16))
            if not chunk:
                return False
            self._buffer += chunk
        return True

    async def read_frame(self) -> bytes | None:
        """The next frame, or None at a clean end of stream."""
        length = shift = 0
        pos = 0
        while True:
            if not await self._fill(pos + 1):
                if pos == 0:
                    return None
                raise NetworkError("stream ended inside a frame header")
            byte = self._buffer[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 35:
                raise NetworkError("frame length varint too long")
        if length > MAX_FRAME:
            raise NetworkError(f"peer sent a {length}-byte frame, over the {MAX_FRAME}-byte limit")
        if not await self._fill(pos + length):
            raise NetworkError("stream ended inside a frame")
        payload = bytes(self._buffer[pos : pos + length])
        del self._buffer[: pos + length]
        return payload
