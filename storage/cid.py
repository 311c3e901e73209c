"""Content identifiers (CIDv0 and CIDv1) as IPFS writes them.

Text forms and the codec/multihash registries come from the ``multiformats`` package;
the binary form is handled here directly because the block store builds and compares
CIDs once per 256 KiB block and ``multiformats.CID`` costs ~0.2 ms per parse or print.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Final

from multiformats import multibase, multicodec

from storage.errors import InvalidCIDError
from storage.varint import decode_uvarint, encode_uvarint

RAW: Final = 0x55
DAG_PB: Final = 0x70
DAG_CBOR: Final = 0x71
LIBP2P_KEY: Final = 0x72

SHA2_256: Final = 0x12
SHA2_512: Final = 0x13
IDENTITY: Final = 0x00

_HASHERS = {SHA2_256: hashlib.sha256, SHA2_512: hashlib.sha512}
_V0_PREFIX: Final = b"\x12\x20"


class CID:
    """An immutable CID, stored as its binary form; equal CIDs have equal bytes."""

    __slots__ = ("_bytes", "_codec", "_digest_offset", "_mh_code", "_version")

    _bytes: bytes
    _version: int
    _codec: int
    _mh_code: int
    _digest_offset: int

    def __init__(self, binary: bytes) -> None:
        """Parse and validate the binary form (use :meth:`parse` for text)."""
        try:
            self._load(bytes(binary))
        except InvalidCIDError:
            raise
        except Exception as exc:  # varint errors and the like
            raise InvalidCIDError(f"invalid binary CID {bytes(binary).hex()!r}: {exc}") from None

    def _load(self, data: bytes) -> None:
        if len(data) == 34 and data.startswith(_V0_PREFIX):
            self._bytes, self._version, self._codec = data, 0, DAG_PB
            self._mh_code, self._digest_offset = SHA2_256, 2
            return
        if not data:
            raise InvalidCIDError("empty CID")
        version, pos = decode_uvarint(data, 0)
        if version != 1:
            raise InvalidCIDError(f"unsupported CID version {version} (only 0 and 1 exist)")
        codec, pos = decode_uvarint(data, pos)
        mh_code, pos = decode_uvarint(data, pos)
        length, pos = decode_uvarint(data, pos)
        if len(data) - pos != length:
            raise InvalidCIDError(
                f"multihash digest length {length} does not match the {len(data) - pos} bytes present"
            )
        expected = _digest_size(mh_code)
        if expected is not None and length != expected:
            raise InvalidCIDError(f"digest of {length} bytes for a hash that gives {expected}")
        self._bytes, self._version, self._codec = data, 1, codec
        self._mh_code, self._digest_offset = mh_code, pos

    # -- construction -------------------------------------------------------------
    @classmethod
    def parse(cls, value: str | bytes | CID) -> CID:
        """Parse a CID from its text form (any multibase), binary form, or a CID."""
        if isinstance(value, CID):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls(bytes(value))
        if not isinstance(value, str):
            raise InvalidCIDError(f"expected a CID string, got {type(value).__name__}")
        text = value.strip()
        if not text:
            raise InvalidCIDError("'' is not a CID: the string is empty")
        try:
            if len(text) == 46 and text.startswith("Qm"):
                binary = multibase.decode("z" + text)
                if not binary.startswith(_V0_PREFIX):
                    raise InvalidCIDError("not a CIDv0")
            elif text[0] == "b":
                binary = _b32decode(text[1:])
            else:
                binary = multibase.decode(text)
        except Exception as exc:
            raise InvalidCIDError(f"{_shorten(text)!r} is not a CID: {exc}") from None
        if binary.startswith(_V0_PREFIX) and len(binary) == 34 and not text.startswith("Qm"):
            raise InvalidCIDError(f"{_shorten(text)!r} is not a CID: a CIDv0 must be written in base58btc")
        try:
            return cls(binary)
        except InvalidCIDError as exc:
            raise InvalidCIDError(f"{_shorten(text)!r} is not a CID: {exc}") from None

    @classmethod
    def from_digest(cls, codec: int, digest: bytes, mh_code: int = SHA2_256) -> CID:
        return cls(b"\x01" + encode_uvarint(codec) + encode_uvarint(mh_code) + encode_uvarint(len(digest)) + digest)

    @classmethod
    def for_block(cls, data: bytes | memoryview, codec: int = RAW) -> CID:
        """The CIDv1 (sha2-256) of a block, as ``ipfs block put`` would give."""
        return cls.from_digest(codec, hashlib.sha256(data).digest())

    # -- accessors ----------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    @property
    def codec(self) -> int:
        return self._codec

    @property
    def codec_name(self) -> str:
        return _codec_name(self._codec)

    @property
    def hash_code(self) -> int:
        return self._mh_code

    @property
    def hash_name(self) -> str:
        return _codec_name(self._mh_code)

    @property
    def digest(self) -> bytes:
        return self._bytes[self._digest_offset :]

    @property
    def multihash(self) -> bytes:
        return self._bytes if self._version == 0 else self._bytes[_multihash_offset(self._bytes) :]

    def __bytes__(self) -> bytes:
        return self._bytes

    def to_v1(self) -> CID:
        if self._version == 1:
            return self
        return CID(b"\x01" + encode_uvarint(DAG_PB) + self._bytes)

    def encode(self, base: str = "base32") -> str:
        """Text form; CIDv0 is always base58btc (that is its only form)."""
        if self._version == 0:
            return multibase.encode(self._bytes, "base58btc")[1:]
        if base == "base32":
            return "b" + base64.b32encode(self._bytes).decode("ascii").rstrip("=").lower()
        return str(multibase.encode(self._bytes, base))

    # -- verification -------------------------------------------------------------
    def matches(self, data: bytes | memoryview) -> bool:
        """True when ``data`` hashes to this CID's multihash."""
        if self._mh_code == IDENTITY:
            return bytes(data) == self.digest
        hasher = _HASHERS.get(self._mh_code)
        if hasher is None:
            raise InvalidCIDError(f"cannot verify {self}: hash function {self.hash_name} is not supported")
        return hasher(data).digest() == self.digest

    # -- dunder -------------------------------------------------------------------
    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"CID({self.encode()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CID) and other._bytes == self._bytes

    def __lt__(self, other: CID) -> bool:
        return self._bytes < other._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)


def _b32decode(text: str) -> bytes:
    if text != text.lower() and text != text.upper():
        raise InvalidCIDError("mixed-case base32")
    if any(c not in "abcdefghijklmnopqrstuvwxyz234567" for c in text.lower()):
        raise InvalidCIDError("invalid base32 character")
    padded = text.upper() + "=" * (-len(text) % 8)
    return base64.b32decode(padded)


def _multihash_offset(binary: bytes) -> int:
    _, pos = decode_uvarint(binary, 0)
    _, pos = decode_uvarint(binary, pos)
    return pos


@lru_cache(maxsize=256)
def _codec_name(code: int) -> str:
    try:
        return str(multicodec.get(code=code).name)
    except Exception:
        return hex(code)


@lru_cache(maxsize=64)
def _digest_size(mh_code: int) -> int | None:
    return {SHA2_256: 32, SHA2_512: 64}.get(mh_code)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
