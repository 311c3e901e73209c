"""Look a name up in a HAMT-sharded UnixFS directory, loading only the shards on its way.

Kubo shards a big directory into a hash array mapped trie: each shard node names its links with
the hex bucket index (upper case, as many digits as ``fanout - 1`` has), followed by the entry's
name for an entry, alone for a sub-shard. The bucket at each level is the next ``log2(fanout)``
bits of the name's murmur3-x64-64 hash (big-endian, most significant bit first).
"""

from __future__ import annotations

from collections.abc import Callable

from storage import dagpb
from storage.cid import CID
from storage.errors import CodecError, UnixFSError
from storage.unixfs.data import NodeType

MURMUR3_X64_64 = 0x22
MAX_DEPTH = 64  # a 64-bit hash is used up long before this

_MASK = (1 << 64) - 1
_C1, _C2 = 0x87C37B91114253D5, 0x4CF5AD432745937F


def murmur3_x64_64(data: bytes) -> bytes:
    """The first 64 bits of MurmurHash3 x64_128 (seed 0), big-endian: the HAMT's hash."""
    h1 = h2 = 0
    blocks = len(data) // 16
    for index in range(blocks):
        k1 = int.from_bytes(data[16 * index : 16 * index + 8], "little")
        k2 = int.from_bytes(data[16 * index + 8 : 16 * index + 16], "little")
        h1 ^= _mix_k1(k1)
        h1 = (_rotl(h1, 27) + h2) & _MASK
        h1 = (h1 * 5 + 0x52DCE729) & _MASK
        h2 ^= _mix_k2(k2)
        h2 = (_rotl(h2, 31) + h1) & _MASK
        h2 = (h2 * 5 + 0x38495AB5) & _MASK
    tail = data[16 * blocks :]
    if len(tail) > 8:
        h2 ^= _mix_k2(int.from_bytes(tail[8:], "little"))
    if tail:
        h1 ^= _mix_k1(int.from_bytes(tail[:8], "little"))
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _MASK
    return h1.to_bytes(8, "big")


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & _MASK


def _mix_k1(k1: int) -> int:
    return (_rotl((k1 * _C1) & _MASK, 31) * _C2) & _MASK


def _mix_k2(k2: int) -> int:
    return (_rotl((k2 * _C2) & _MASK, 33) * _C1) & _MASK


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    return k ^ (k >> 33)


def shard_params(data: bytes) -> tuple[int, int]:
    """(hashType, fanout) of a HAMT shard's UnixFS Data; raises UnixFSError if it is not one."""
    fields: dict[int, int] = {}
    pos = 0
    try:
        while pos < len(data):
            number, wire, pos = dagpb.read_key(data, pos)
            if wire == 0:
                fields[number], pos = dagpb.read_varint(data, pos)
            elif wire == 2:
                _, pos = dagpb.read_length_delimited(data, pos)
            else:
                raise UnixFSError(f"UnixFS: unexpected wire type {wire}")
    except CodecError as exc:
        raise UnixFSError(f"malformed HAMT shard data: {exc}") from None
    if fields.get(1) != NodeType.HAMT_SHARD:
        raise UnixFSError("not a HAMT shard")
    fanout = fields.get(6, 0)
    if fanout < 2 or fanout > 1024 or fanout & (fanout - 1):
        raise UnixFSError(f"HAMT fanout {fanout} is not a power of two up to 1024")
    return fields.get(5, MURMUR3_X64_64), fanout


def lookup(
    load: Callable[[CID], bytes], cid: CID, node: dagpb.PBNode, name: str
) -> tuple[list[tuple[CID, bytes]], CID | None]:
    """The sub-shards walked (after ``cid``'s own block) and the entry's CID, or None if absent."""
    hash_type, fanout = shard_params(node.data or b"")
    if hash_type != MURMUR3_X64_64:
        raise UnixFSError(f"HAMT {cid} hashes names with {hash_type:#x}; only murmur3-x64-64 is supported")
    bits = fanout.bit_length() - 1
    width = len(f"{fanout - 1:X}")
    digest = int.from_bytes(murmur3_x64_64(name.encode("utf-8", "surrogateescape")), "big")
    walked: list[tuple[CID, bytes]] = []
    for depth in range(MAX_DEPTH):
        if (depth + 1) * bits > 64:
            raise UnixFSError(f"HAMT {cid} is deeper than its 64-bit hash allows")
        bucket = (digest >> (64 - (depth + 1) * bits)) & (fanout - 1)
        prefix = f"{bucket:0{width}X}"
        link = next((item for item in node.links if (item.name or "").startswith(prefix)), None)
        if link is None:
            return walked, None
        if link.name == prefix:  # a sub-shard: go one level down
            data = load(link.hash)
            walked.append((link.hash, data))
            cid, node = link.hash, dagpb.decode(data)
            continue
        return walked, (link.hash if link.name == prefix + name else None)
    raise UnixFSError(f"HAMT {cid} is more than {MAX_DEPTH} levels deep")
