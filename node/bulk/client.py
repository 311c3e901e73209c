"""The fetcher's side of the bulk path: a block source that streams a whole DAG in one CAR.

:meth:`BulkClient.blocks` asks the provider over libp2p where to fetch (the ticket: the URL,
plain or TLS as the data's privacy says, and for TLS the certificate's sha256, which it pins),
GETs ``/car/{root}`` there authenticated by the ``libp2p-PeerID`` handshake
(:mod:`node.bulk.peerauth`: the provider proves its peer ID too, and its bearer token is kept
and reused for the next fetches from that listener), and yields verified blocks in DAG order.
Built without an identity, or facing a provider whose 401 offers no ``libp2p-PeerID``
challenge (one from before it), it sends the ticket's token instead (the older path).
Three stages overlap: a reader task pulls the body off the socket into a bounded queue, the
verifier hashes and checks order in a thread (:class:`~node.bulk.carstream.CarVerifier`), and
the exchange's write-behind commits to LMDB; each block is hashed once. A stream that breaks
the rules raises :class:`~node.bulk.carstream.BadCar` (the exchange drops that provider); one that ends early
raises :class:`~node.bulk.carstream.TruncatedCar`, any other failure NetworkError (the
exchange then goes on over ``/mycel/blocks``, from the blocks already stored).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import aiohttp

from node.bulk import peerauth, ticket
from node.bulk.carstream import CarVerifier, TruncatedCar
from node.errors import NetworkError
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from storage.blockstore import VerifiedBlock
from storage.cid import CID

READ_AHEAD = 64  # chunks the reader may be ahead of the verifier (aiohttp hands out up to ~64 KiB each)
FEED = 4 << 20  # bytes handed to the verifier at once: hashing releases the GIL, so one thread does
TICKET_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
THREADS = 2
T = TypeVar("T")


class BulkUnavailable(NetworkError):
    """The provider gave no ticket, refused the request (status and its reason), or the connection failed."""


class BulkClient:
    def __init__(
        self,
        network: P2PNetwork,
        offered: Callable[[str], str | None],
        metrics: Metrics,
        identity: NodeIdentity | None = None,
    ) -> None:
        self.network = network
        self.auth = None if identity is None else peerauth.PeerAuthClient(identity.sign, identity.public_key)
        self._offered = offered  # peer -> its announced bulk URL, if it offers one
        self.metrics = metrics
        self._io = ThreadPoolExecutor(THREADS, thread_name_prefix="bulk-verify")
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._io.shutdown(wait=True, cancel_futures=True)

    def offers(self, peer: str) -> bool:
        return self._offered(peer) is not None

    async def _off_loop(self, work: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, work, *args)

    async def get_ticket(self, peer: str, root: CID) -> ticket.Ticket:
        try:
            frames = await self.network.request(peer, ticket.PROTOCOL, ticket.request_for(root), TICKET_TIMEOUT)
        except NetworkError as exc:
            raise BulkUnavailable(f"no bulk ticket from {peer}: {exc}") from None
        if len(frames) != 1:
            raise BulkUnavailable(f"{peer} gave no bulk ticket for {root}")
        try:
            return ticket.Ticket.decode(frames[0])
        except ticket.TicketError as exc:
            raise BulkUnavailable(f"{peer} sent an unusable ticket: {exc}") from None

    async def blocks(self, peer: str, root: CID) -> AsyncGenerator[list[VerifiedBlock], None]:
        """The DAG under ``root`` from ``peer``, verified batch by verified batch, in order."""
        issued = await self.get_ticket(peer, root)
        await self._session_open()
        assert self._session is not None
        pin: aiohttp.Fingerprint | bool = aiohttp.Fingerprint(issued.cert_sha256) if issued.cert_sha256 else True
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=READ_TIMEOUT)
        url = f"{issued.url}/car/{root}"
        headers = {"Accept": "application/vnd.ipld.car"}
        try:
            if self.auth is None:
                headers["Authorization"] = ticket.authorization(issued.token)
                opened = await self._session.get(url, headers=headers, ssl=pin, timeout=timeout)
            else:
                opened = await self.auth.get(self._session, url, peer, headers, ssl=pin, timeout=timeout)
                if opened.status == 401 and not peerauth.parse_params(opened.headers.get("WWW-Authenticate")):
                    opened.release()  # a provider that does not speak the scheme yet: its own token, then
                    headers["Authorization"] = ticket.authorization(issued.token)
                    opened = await self._session.get(url, headers=headers, ssl=pin, timeout=timeout)
        except peerauth.PeerAuthError as exc:
            raise BulkUnavailable(f"{peer} failed the {peerauth.SCHEME} handshake: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BulkUnavailable(f"bulk request to {peer} failed: {exc}") from None
        try:
            async with opened as response:
                if response.status != 200:
                    reason = (await response.content.read(300)).decode("utf-8", "replace")
                    raise BulkUnavailable(f"{peer} answered the bulk request {response.status}: {reason}")
                async for batch in self._verified(response, root):
                    yield batch
        except aiohttp.ClientPayloadError as exc:
            raise TruncatedCar(f"the bulk stream from {peer} broke off: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BulkUnavailable(f"bulk request to {peer} failed: {exc}") from None

    async def _session_open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32), auto_decompress=False)

    async def _verified(self, response: aiohttp.ClientResponse, root: CID) -> AsyncGenerator[list[VerifiedBlock], None]:
        verifier = CarVerifier(root)
        chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(READ_AHEAD)
        reader = asyncio.ensure_future(_read(response, chunks))
        try:
            finished = False
            while not finished:
                item = await chunks.get()
                parts: list[bytes] = []
                size = 0
                while True:
                    if isinstance(item, BaseException):
                        raise item
                    if item is None:
                        finished = True
                        break
                    parts.append(item)
                    size += len(item)
                    if size >= FEED or chunks.empty():
                        break
                    item = chunks.get_nowait()
                if parts:
                    blocks = await self._off_loop(verifier.feed, b"".join(parts))
                    if blocks:
                        yield blocks
            verifier.finish()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _read(response: aiohttp.ClientResponse, chunks: asyncio.Queue[bytes | BaseException | None]) -> None:
    try:
        async for chunk in response.content.iter_any():
            await chunks.put(chunk)
    except Exception as exc:  # handed to the consumer, which raises it in its own frame
        await chunks.put(exc)
        return
    await chunks.put(None)
