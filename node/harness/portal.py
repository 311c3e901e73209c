"""Reach a node's loopback-bound API inside a namespace from the host, at the same port.

A node API in a site binds 127.0.0.1 of that site (loopback-only: no token needed, and the
emulated WAN never carries API traffic). The portal listens on the host's 127.0.0.1 at the same
port number and splices each connection to a socket made inside the site's namespace, so tests,
the SDK and the CLI use plain ``http://127.0.0.1:PORT`` URLs. One thread, one asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future

from node.harness.netns import socket_in

_CHUNK = 1 << 16
CLOSE_TIMEOUT = 30.0  # seconds close() waits for the splices to unwind


class Portal:
    """A thread that forwards host ports into namespaces; ``open()`` adds one, ``close()`` stops all."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="netns-portal", daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []

    def open(self, netns: str, port: int) -> None:
        """Forward host 127.0.0.1:``port`` to 127.0.0.1:``port`` inside ``netns``."""
        done: Future[None] = asyncio.run_coroutine_threadsafe(self._serve(netns, port), self.loop)
        done.result(timeout=10)

    async def _serve(self, netns: str, port: int) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            inner = socket_in(netns)
            inner.setblocking(False)
            try:
                await self.loop.sock_connect(inner, ("127.0.0.1", port))
            except OSError:
                inner.close()
                writer.close()
                return
            inner_reader, inner_writer = await asyncio.open_connection(sock=inner)
            try:
                await asyncio.gather(_pump(reader, inner_writer), _pump(inner_reader, writer))
            finally:
                writer.close()
                inner_writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", port, reuse_address=True)
        self.servers.append(server)

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            # until none is left: a connection accepted while the first ones unwind has a task too
            while tasks := [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)  # finished, not destroyed pending

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                # generous: on a saturated host (30 nodes on 2 cores) splices take seconds to unwind
                asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=CLOSE_TIMEOUT)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError):
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
