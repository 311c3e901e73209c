"""Unsigned LEB128 varints, as used by multiformats, CAR and protobuf."""

from __future__ import annotations

from storage.errors import CodecError

_MAX_VARINT_BYTES = 9  # multiformats caps varints at 63 bits


def encode_uvarint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varint must be non-negative")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_uvarint(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Return ``(value, next_offset)``; rejects truncated and non-minimal varints."""
    value = 0
    shift = 0
    pos = offset
    end = len(buf)
    while True:
        if pos >= end:
            raise CodecError("truncated varint")
        if pos - offset >= _MAX_VARINT_BYTES:
            raise CodecError("varint longer than 9 bytes")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and pos - offset > 1:
                raise CodecError("non-minimal varint encoding")
            return value, pos
        shift += 7
