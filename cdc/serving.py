"""Serve an ASGI app with uvicorn inside the caller's event loop, on a socket bound before start-up.

Binding first means the port is known (and owned) before uvicorn starts: no free-port race. The caller's
task group owns the server task; leaving the context asks uvicorn to shut down and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from cdc.sandbox.tls import LocalTls


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding process owns signals and shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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
    tls: LocalTls | None = None,
    name: str = "http",
    graceful_s: float = 5.0,
) -> AsyncIterator[Served]:
    """Run ``app`` until the block ends; yields its base URL once uvicorn accepts connections."""
    sock = bind(host, port)
    bound_port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # uvicorn's records go through the root logger's handler (cdc.logs), not its own
        access_log=False,
        lifespan="on",
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
