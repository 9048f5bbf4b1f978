"""Serve an ASGI app with uvicorn inside the caller's event loop, on a socket bound before start-up.

Binding first means the port is known (and owned) before uvicorn starts: no free-port race. The caller's
task group owns the server task; leaving the context asks uvicorn to shut down and waits for it.

HTTP/1.1 is always h11 (never httptools, should it be installed), with a deadline on request headers
(:class:`_HeaderDeadline`): the framing rules the apps rely on are h11's, and the tests run what ships.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol


class CertFiles(Protocol):
    """Where a TLS server's certificate chain and key are (the sandbox's `LocalTls` is one)."""

    @property
    def certfile(self) -> Path: ...

    @property
    def keyfile(self) -> Path: ...


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding process owns signals and shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers.

    uvicorn has none: its keep-alive timer runs only between requests and stops at the first byte of the
    next one, and no timer runs before a connection's first request, so a client that opens a connection and
    trickles its headers, or sends nothing, held it for as long as it liked (issue 13: 40 such connections
    stayed open for a minute). Here the deadline starts when the connection opens and at the first byte of
    each later request; if it passes before the headers are complete, the connection is closed the way
    uvicorn closes an idle keep-alive one (no answer: there is no request to answer). The body's own
    deadline is the app's, which can answer it (408).
    """

    timeout_s: float = 5.0
    _deadline: asyncio.TimerHandle | None = None

    def on_timeout(self) -> None:
        """Called when the deadline closes a connection; :func:`serve` puts the caller's count here."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first byte of a request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are complete (or the connection failed)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.on_timeout()
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def _protocol(header_timeout_s: float, on_header_timeout: Callable[[], None]) -> type[H11Protocol]:
    class Protocol(_HeaderDeadline):
        timeout_s = header_timeout_s

        def on_timeout(self) -> None:
            on_header_timeout()

    return Protocol


@dataclass(frozen=True)
class Served:
    base_url: str
    host: str
    port: int


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only for TCP-typed sockets;
    # without it every keep-alive response waits ~40 ms for Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: CertFiles | None = None,
    name: str = "http",
    graceful_s: float = 5.0,
    header_timeout_s: float = 5.0,
    on_header_timeout: Callable[[], None] = lambda: None,
) -> AsyncIterator[Served]:
    """Run ``app`` until the block ends; yields its base URL once uvicorn accepts connections.

    A connection whose request headers are not complete ``header_timeout_s`` after it opened (or after the
    request's first byte) is closed, and ``on_header_timeout`` called.
    """
    sock = bind(host, port)
    bound_port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # uvicorn's records go through the root logger's handler (cdc.logs), not its own
        access_log=False,
        lifespan="on",
        http=_protocol(header_timeout_s, on_header_timeout),
        ssl_certfile=str(tls.certfile) if tls else None,
        ssl_keyfile=str(tls.keyfile) if tls else None,
        timeout_graceful_shutdown=max(1, round(graceful_s)),
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{name}")
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError(f"the {name} server stopped during start-up")
            await asyncio.sleep(0.01)
        scheme = "https" if tls else "http"
        shown = f"[{host}]" if ":" in host else host
        yield Served(f"{scheme}://{shown}:{bound_port}", host, bound_port)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, graceful_s + 5)
        sock.close()
