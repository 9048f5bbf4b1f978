"""A small HTTP ``CONNECT`` proxy for tests, as a corporate proxy in front of Dataverse and Entra ID would be:
it tunnels TCP to the host a client names, optionally asks for Basic proxy credentials (407 without them),
and records every tunnel (target and the client's ``User-Agent``), so a test can prove which requests went
through it. Plain (non-CONNECT) requests get 405: the daemon's traffic is HTTPS only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["ConnectProxy", "Tunnel", "running_proxy"]

_HEAD_LIMIT = 16 * 1024


@dataclass(frozen=True)
class Tunnel:
    target: str
    """``host:port`` the client asked for."""
    user_agent: str


@dataclass
class ConnectProxy:
    username: str | None = None
    password: str | None = None
    tunnels: list[Tunnel] = field(default_factory=list)
    refused: int = 0
    """CONNECTs answered 407 (no or wrong credentials)."""
    url: str = ""
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def to(self, port: int) -> list[Tunnel]:
        """The tunnels opened to a target on ``port``."""
        return [t for t in self.tunnels if t.target.endswith(f":{port}")]

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.username is None:
            return True
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return headers.get("proxy-authorization", "") == f"Basic {expected}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _HEAD_LIMIT:
            return
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*request_line.split(" "), "", ""][:3]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)
        }
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        if not self._authorized(headers):
            self.refused += 1
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            await writer.drain()
            return
        host, _, port = target.rpartition(":")
        upstream_reader, upstream_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        self._writers.add(upstream_writer)
        self.tunnels.append(Tunnel(target, headers.get("user-agent", "")))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        finally:
            self._writers.discard(upstream_writer)
            upstream_writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        await server.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError):
        if writer.can_write_eof():
            writer.write_eof()


@contextlib.asynccontextmanager
async def running_proxy(
    username: str | None = None, password: str | None = None
) -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy(username=username, password=password)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
