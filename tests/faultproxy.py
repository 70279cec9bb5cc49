"""A small asyncio TCP proxy on loopback that breaks a Redis connection on purpose.

It sits between a store and a redis-server the tests started, and can:

* add latency to every chunk it forwards (``latency``);
* cut every open connection at once (:meth:`FaultProxy.cut_all`);
* drop one reply after its request reached the server (:meth:`FaultProxy.drop_reply_to`):
  the next time a client sends bytes containing a marker (say the SHA of the
  save script), the request goes to the server, and the server's reply is
  thrown away and the client's connection closed, so the client cannot know
  whether the command ran;
* refuse new connections (``refuse``).

Everything runs in the test's event loop; :meth:`FaultProxy.aclose` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

__all__ = ["FaultProxy"]


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    # Set when a request carrying the armed marker went through this link: the
    # next reply read from the server on it is dropped.
    drop_next_reply: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for writer in (self.client, self.server):
            with contextlib.suppress(Exception):
                writer.transport.abort()


class FaultProxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to a Redis server, with faults on demand.

    Example::

        async with FaultProxy(server.port) as proxy:
            store = RedisStatePersistence(proxy.url)
            proxy.drop_reply_to(b"EVALSHA")
    """

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.latency = 0.0
        self.refuse = False
        self.dropped_replies = 0
        self.connections_made = 0
        self.cuts = 0
        self._armed: list[bytes] = []
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The ``redis://`` URL that goes through the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> FaultProxy:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def drop_reply_to(self, marker: bytes) -> None:
        """Drop the reply to the next request whose bytes contain ``marker`` (once)."""
        self._armed.append(marker)

    def cut_all(self) -> int:
        """Abort every open connection (both sides); return how many were cut."""
        links = list(self._links)
        for link in links:
            link.close()
        self.cuts += len(links)
        return len(links)

    @property
    def open_connections(self) -> int:
        """How many client connections are open through the proxy."""
        return len(self._links)

    async def aclose(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
        links = list(self._links)
        for link in links:
            link.close()
        tasks = [task for link in links for task in link.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections_made += 1
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump_requests(link, reader, up_writer)),
            asyncio.create_task(self._pump_replies(link, up_reader, writer)),
        ]
        try:
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            link.close()
            self._links.discard(link)

    async def _pump_requests(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                for marker in self._armed:
                    if marker in chunk:
                        self._armed.remove(marker)
                        link.drop_next_reply = True
                        break
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            link.close()

    async def _pump_replies(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                if link.drop_next_reply:
                    # The server has run the request; its client never learns.
                    self.dropped_replies += 1
                    return
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            link.close()
