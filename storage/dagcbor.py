"""Strict DAG-CBOR (IPLD) encoding on top of cbor2.

Encoding normalises the value (map keys sorted length-first then bytewise, CIDs as
tag 42, floats always 64-bit, NaN/Infinity refused) and lets cbor2's C encoder write it.

Decoding lets cbor2 build the value, then re-encodes it and demands the same bytes: a
block is valid DAG-CBOR exactly when it is the canonical encoding of what it decodes to.
That single check covers indefinite lengths, duplicate or unsorted keys, non-minimal
integers, short floats and trailing bytes. When it fails, :func:`_explain` walks the
bytes to name the first violation, so the error says *why*.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import cbor2

from storage.cid import CID, DAG_CBOR
from storage.errors import CodecError, InvalidCIDError

CID_TAG = 42
_INT_MIN = -(2**64)
_INT_MAX = 2**64 - 1

Value = Any  # None | bool | int | float | str | bytes | list | dict | CID


def encode(value: Value) -> bytes:
    """Encode an IPLD value as canonical DAG-CBOR; raises CodecError for what IPLD cannot hold."""
    try:
        return cbor2.dumps(_normalise(value, 0))
    except CodecError:
        raise
    except (cbor2.CBOREncodeError, ValueError, TypeError) as exc:
        raise CodecError(f"cannot encode as DAG-CBOR: {exc}") from None


def encode_with_cid(value: Value) -> tuple[CID, bytes]:
    data = encode(value)
    return CID.for_block(data, DAG_CBOR), data


def decode(data: bytes | memoryview) -> Value:
    """Decode one DAG-CBOR block, refusing anything that is not its canonical form."""
    data = bytes(data)
    if not data:
        raise CodecError("empty DAG-CBOR block")
    try:
        value = cbor2.loads(data, tag_hook=_tag_hook)
    except Exception as exc:
        cause = exc if isinstance(exc, CodecError) else exc.__cause__
        if isinstance(cause, CodecError):
            raise CodecError(f"not valid DAG-CBOR: {cause}") from None
        raise CodecError(f"malformed DAG-CBOR: {_explain(data) or exc}") from None
    try:
        canonical = encode(value)
    except CodecError as exc:
        raise CodecError(f"not valid DAG-CBOR: {_explain(data) or exc}") from None
    if canonical != data:
        raise CodecError(f"not canonical DAG-CBOR: {_explain(data) or 'encoding differs from canonical form'}")
    return value


def decode_message(data: bytes, limit: int, what: str, error: type[Exception]) -> dict[str, Any]:
    """A peer's message: at most ``limit`` bytes, canonical DAG-CBOR, a map; else ``error``.

    Every protocol checks a peer's bytes in this order (size before any parsing, then the
    codec, then the shape), so this is the one place that does it; ``what`` names the
    message in the error ("a stream message"), the caller then checks its fields.
    """
    if len(data) > limit:
        raise error(f"{what} is at most {limit} bytes (got {len(data)})")
    try:
        value = decode(data)
    except CodecError as exc:
        raise error(f"{what} is not valid DAG-CBOR: {exc}") from None
    if not isinstance(value, dict):
        raise error(f"{what} is a DAG-CBOR map")
    return value


def iter_links(value: Value) -> Iterator[CID]:
    """Every CID inside a decoded value, depth first, in encoding order."""
    if isinstance(value, CID):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_links(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_links(item)


# -- encoding ------------------------------------------------------------------------

_MAX_DEPTH = 200  # well inside Python's recursion limit (two frames per level)


def _ascii_order(key: str) -> tuple[int, str]:
    return len(key), key  # an ASCII key's UTF-8 bytes are its characters: same order as bytewise


def _normalise(value: Value, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise CodecError(f"value nested deeper than {_MAX_DEPTH} levels")
    # exact built-in types first, by identity (records are mostly str-keyed dicts, lists, str
    # and int: the generic isinstance chain below cost most of a job record's encoding)
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict and all(type(key) is str and key.isascii() for key in value):
        return {key: _normalise(value[key], depth + 1) for key in sorted(value, key=_ascii_order)}
    if kind is list:
        return [item if type(item) is str else _normalise(item, depth + 1) for item in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError(f"integer {value} is outside the 64-bit range DAG-CBOR allows")
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise CodecError("NaN and Infinity cannot be encoded in DAG-CBOR")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, CID):
        return cbor2.CBORTag(CID_TAG, b"\x00" + bytes(value))
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(f"map key {key!r} is not a string (DAG-CBOR keys must be strings)")
            encoded_key = key.encode("utf-8")
            items.append((len(encoded_key), encoded_key, key, item))
        items.sort(key=lambda entry: (entry[0], entry[1]))
        return {key: _normalise(item, depth + 1) for _, _, key, item in items}
    if isinstance(value, Sequence):
        return [_normalise(item, depth + 1) for item in value]
    raise CodecError(f"{type(value).__name__} has no DAG-CBOR representation")


def _tag_hook(*args: Any) -> Any:
    # cbor2 6 calls hook(tag, immutable), cbor2 5 (which vyper pins) hook(decoder, tag)
    tag = next(arg for arg in args if isinstance(arg, cbor2.CBORTag))
    if tag.tag != CID_TAG:
        raise CodecError(f"tag {tag.tag} is not allowed in DAG-CBOR (only tag 42 for CIDs)")
    raw = tag.value
    if not isinstance(raw, bytes) or not raw.startswith(b"\x00"):
        raise CodecError("tag 42 must wrap a byte string starting with the 0x00 multibase prefix")
    try:
        return CID(raw[1:])
    except InvalidCIDError as exc:
        raise CodecError(f"tag 42 holds an invalid CID: {exc}") from None


# -- diagnosis ------------------------------------------------------------------------


class _Violation(Exception):
    pass


def _explain(data: bytes) -> str | None:
    """Name the first DAG-CBOR rule ``data`` breaks, or None if none is found."""
    try:
        end = _walk(data, 0, 0)
    except _Violation as exc:
        return str(exc)
    except IndexError:
        return "unexpected end of data"
    if end != len(data):
        return f"{len(data) - end} trailing byte(s) after the first item"
    return None


def _head(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """Return (major, info, argument, next_pos); enforces minimal, definite lengths."""
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise IndexError
        arg = int.from_bytes(data[pos : pos + size], "big")
        if major != 7:
            minimum = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}[info]
            if arg < minimum:
                raise _Violation(f"non-minimal length or integer encoding at byte {pos - 1}")
        return major, info, arg, pos + size
    if info == 31:
        raise _Violation(f"indefinite-length item at byte {pos - 1}")
    raise _Violation(f"reserved additional information {info} at byte {pos - 1}")


def _walk(data: bytes, pos: int, depth: int) -> int:
    if depth > _MAX_DEPTH:
        raise _Violation("nesting too deep")
    start = pos
    major, info, arg, pos = _head(data, pos)
    if major in (0, 1):
        return pos
    if major in (2, 3):
        if pos + arg > len(data):
            raise IndexError
        if major == 3:
            try:
                data[pos : pos + arg].decode("utf-8")
            except UnicodeDecodeError:
                raise _Violation(f"invalid UTF-8 in string at byte {start}") from None
        return pos + arg
    if major == 4:
        for _ in range(arg):
            pos = _walk(data, pos, depth + 1)
        return pos
    if major == 5:
        previous: bytes | None = None
        for _ in range(arg):
            key_start = pos
            if data[pos] >> 5 != 3:
                raise _Violation(f"map key at byte {pos} is not a string")
            pos = _walk(data, pos, depth + 1)
            key = data[key_start:pos]
            if previous is not None:
                if key == previous:
                    raise _Violation(f"duplicate map key {_key_text(key)!r}")
                if (len(key), key) < (len(previous), previous):
                    raise _Violation(f"map keys not in canonical order at {_key_text(key)!r}")
            previous = key
            pos = _walk(data, pos, depth + 1)
        return pos
    if major == 6:
        if arg != CID_TAG:
            raise _Violation(f"tag {arg} is not allowed (only 42)")
        if data[pos] >> 5 != 2:
            raise _Violation("tag 42 must wrap a byte string")
        return _walk(data, pos, depth + 1)
    # major 7: simple values and floats
    if info in (20, 21, 22):
        return pos
    if info == 27:
        (number,) = struct.unpack(">d", data[pos - 8 : pos])
        if math.isnan(number) or math.isinf(number):
            raise _Violation("NaN and Infinity are not allowed")
        return pos
    if info in (25, 26):
        raise _Violation(f"{16 if info == 25 else 32}-bit float at byte {start} (DAG-CBOR floats are 64-bit)")
    raise _Violation(f"simple value {arg} at byte {start} is not allowed (only false, true, null)")


def _key_text(encoded_key: bytes) -> str:
    _, _, _, pos = _head(encoded_key, 0)
    return encoded_key[pos:].decode("utf-8", "replace")
