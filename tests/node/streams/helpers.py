"""A writer that signs chains of entries, as the SDK does, for the stream tests."""

from __future__ import annotations

import nacl.signing

from storage.cid import CID, DAG_CBOR
from storage.peerid import peer_id_for
from storage.streamentry import sign_entry, stream_id


class Writer:
    def __init__(self, name: str = "events", seed: bytes = b"w" * 32) -> None:
        self.key = nacl.signing.SigningKey(seed)
        self.name = name
        self.peer = peer_id_for(bytes(self.key.verify_key))
        self.stream = stream_id(self.peer, name)
        self.seq = 0
        self.head: CID | None = None

    def next(self, payload: bytes | CID = b"x", time_ms: int = 1_000) -> bytes:
        """The next signed entry of the chain (and advance the head)."""
        raw = sign_entry(self.key, self.name, self.seq + 1, self.head, payload, time_ms)
        self.seq += 1
        self.head = CID.for_block(raw, DAG_CBOR)
        return raw

    def at(self, seq: int, prev: CID | None, payload: bytes = b"other") -> bytes:
        """An entry at any seq and prev, signed by this writer (forks, gaps)."""
        return sign_entry(self.key, self.name, seq, prev, payload, 1_000)
