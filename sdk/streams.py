"""Streams from the client side: the SDK holds the writer key and signs; the node never sees it.

``stream = client.stream("events", key)`` names a stream (its id derives from the key and
the name); ``await stream.append(b"...")`` signs the next entries, chained to the head the
node reports, and sends them as one batch; ``stream.entries()`` and ``stream.tail()`` check
every entry's signature and its link to the one before, so a node cannot alter, drop from
the middle, or reorder what it serves without the reader noticing.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import nacl.signing

from sdk.errors import NodeApiError, UsageError, VerificationError
from storage.cid import CID
from storage.peerid import peer_id_for
from storage.privacy.errors import PrivacyError
from storage.streamentry import Entry, EntryError, is_stream_id, sign_entry, stream_id, verify_entry
from storage.streampolicy import StreamPolicy, parse_policy, sign_policy

if TYPE_CHECKING:
    from sdk.client import Client

__all__ = ["Stream", "StreamReader", "load_key", "verify_chain"]


def load_key(path: str | Path, create: bool = False) -> nacl.signing.SigningKey:
    """A writer key from a file holding its 32-byte seed (created mode 0600 when ``create``)."""
    target = Path(path)
    if not target.exists():
        if not create:
            raise UsageError(f"no writer key at {target}: create one with 'mycel stream create NAME --key {target}'")
        key = nacl.signing.SigningKey.generate()
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
            out.write(bytes(key))
        return key
    seed = target.read_bytes()
    if len(seed) != 32:
        raise UsageError(f"{target} holds {len(seed)} bytes, not a 32-byte Ed25519 seed")
    return nacl.signing.SigningKey(seed)


def verify_chain(stream: str, raws: Sequence[bytes], after: Entry | None = None) -> list[Entry]:
    """Verify entries of ``stream`` in order: each signed, each linked to the one before."""
    entries: list[Entry] = []
    previous = after
    for raw in raws:
        try:
            entry = verify_entry(raw)
        except EntryError as exc:
            raise VerificationError(f"stream {stream}: {exc}") from None
        if entry.stream != stream:
            raise VerificationError(f"the node sent an entry of {entry.stream} for stream {stream}")
        if previous is not None and (entry.seq != previous.seq + 1 or entry.prev != previous.cid):
            raise VerificationError(f"stream {stream}: entry {entry.seq} does not follow entry {previous.seq}")
        entries.append(entry)
        previous = entry
    return entries


class StreamReader:
    """Read and tail any stream by id (no key needed): every entry verified on arrival."""

    def __init__(self, client: Client, stream: str) -> None:
        if not is_stream_id(stream):
            raise UsageError(f"{stream[:80]!r} is not a stream id ('st' and 52 base32 characters)")
        self.client = client
        self.id = stream

    async def info(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self.client._call("GET", f"/v1/streams/{self.id}")
        return answer

    async def policy(self) -> StreamPolicy | None:
        """The stream's writer-signed policy as the node holds it, verified here (None: the node holds none)."""
        try:
            answer = await self.client._call("GET", f"/v1/streams/{self.id}/policy")
        except NodeApiError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            signed = parse_policy(base64.b64decode(answer["record"]))
        except (PrivacyError, ValueError, KeyError, TypeError) as exc:
            raise VerificationError(f"stream {self.id}: the node's policy record does not check: {exc}") from None
        if signed.policy.stream != self.id:
            raise VerificationError(f"the node sent the policy of {signed.policy.stream} for stream {self.id}")
        return signed.policy

    async def entries(self, after: int = 0, limit: int = 100) -> list[Entry]:
        page = await self.client._call("GET", f"/v1/streams/{self.id}/entries", params={"after": after, "limit": limit})
        return verify_chain(self.id, [base64.b64decode(item["data"]) for item in page["entries"]])

    async def tail(self, after: int | None = None) -> AsyncGenerator[Entry, None]:
        """Entries after ``after`` (default: the head now), then each new one, as they are appended."""
        params = {} if after is None else {"after": str(after)}
        path = f"/v1/streams/{self.id}/tail"
        previous: Entry | None = None
        async with self.client._request("GET", path, stream=True, params=params) as response:
            data: list[str] = []
            try:
                async for raw in response.content:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif not line and data:
                        event = json.loads("\n".join(data))
                        data = []
                        [entry] = verify_chain(self.id, [base64.b64decode(event["data"])], previous)
                        previous = entry
                        yield entry
            except aiohttp.ClientPayloadError:
                return


class Stream(StreamReader):
    """A stream this client writes: ``await stream.append(b"a", b"b")`` signs and sends them."""

    def __init__(
        self, client: Client, name: str, key: nacl.signing.SigningKey | bytes, regions: Sequence[str] | None = None
    ) -> None:
        self.key = key if isinstance(key, nacl.signing.SigningKey) else nacl.signing.SigningKey(key)
        self.name = name
        self.writer = peer_id_for(bytes(self.key.verify_key))
        try:
            super().__init__(client, stream_id(self.writer, name))
        except EntryError as exc:
            raise UsageError(str(exc)) from None
        self._head: tuple[int, CID | None] | None = None
        self.regions = tuple(regions) if regions is not None else None  # the policy to set before the first append
        if self.regions is not None:
            self._signed_policy(self.regions, 1)  # a bad region fails here, before anything is sent

    def _signed_policy(self, regions: Sequence[str], version: int) -> bytes:
        try:
            return sign_policy(self.key, self.name, tuple(regions), version).data
        except PrivacyError as exc:
            raise UsageError(f"stream {self.name}'s policy: {exc.detail}") from None

    async def set_policy(self, regions: Sequence[str], version: int = 1) -> dict[str, Any]:
        """Sign (with the writer key) and set the stream's policy: its entries go only to nodes announcing
        one of ``regions`` (empty: anywhere). A change needs a higher ``version`` than the node holds."""
        body = {"record": base64.b64encode(self._signed_policy(regions, version)).decode()}
        answer: dict[str, Any] = await self.client._call("POST", f"/v1/streams/{self.id}/policy", json=body)
        return answer

    async def create(self) -> StreamPolicy | None:
        """Set the policy ``regions`` asked for (once; the same regions held already are fine) and return
        the policy the node holds. Called by the first :meth:`append`."""
        if self.regions is not None:
            try:
                await self.set_policy(self.regions)
            except NodeApiError as exc:
                if exc.error != "stale":
                    raise
                held = await self.policy()
                if held is None or set(held.regions) != set(self.regions):
                    where = f"version {held.version}, regions {list(held.regions)}" if held else "another policy"
                    raise UsageError(
                        f"the node holds {where} for stream {self.name}: sign a higher version to change it "
                        "(set_policy(regions, version=N+1); mycel stream policy NAME --version N+1)"
                    ) from None
            self.regions = None
        return await self.policy()

    async def _current_head(self) -> tuple[int, CID | None]:
        if self._head is None:
            try:
                info = await self.info()
            except NodeApiError as exc:
                if exc.status != 404:
                    raise
                self._head = (0, None)
            else:
                self._head = (info["head_seq"], CID.parse(info["head_cid"]) if info["head_cid"] else None)
        return self._head

    async def append(self, *payloads: bytes | CID, retention: dict[str, int] | None = None) -> dict[str, Any]:
        """Sign ``payloads`` as the next entries and append them as one batch (all or none)."""
        if not payloads:
            raise UsageError("append at least one payload")
        if self.regions is not None:
            await self.create()
        seq, prev = await self._current_head()
        raws = []
        now = int(time.time() * 1000)
        for payload in payloads:
            seq += 1
            try:
                raw = sign_entry(self.key, self.name, seq, prev, payload, now)
            except EntryError as exc:
                raise UsageError(str(exc)) from None
            raws.append(raw)
            prev = CID.for_block(raw, 0x71)
        body: dict[str, Any] = {"entries": [base64.b64encode(raw).decode() for raw in raws]}
        if retention is not None:
            body["retention"] = retention
        try:
            answer: dict[str, Any] = await self.client._call("POST", f"/v1/streams/{self.id}/entries", json=body)
        except NodeApiError:
            self._head = None  # read the head again next time (another writer process may have appended)
            raise
        self._head = (seq, prev)
        return answer
