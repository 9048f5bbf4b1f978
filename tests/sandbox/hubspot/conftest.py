"""Fixtures for the HubSpot emulator's contract tests: an in-process client and a live webhook receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.hubspot import HubSpotSandbox
from cdc.serving import Served, serve


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(seed=7)


@pytest.fixture
async def client(sandbox: HubSpotSandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="https://api.hubapi.test", headers=headers
    ) as c:
        yield c


@dataclass
class Delivery:
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = orjson.loads(self.body)
        return events


@dataclass
class Receiver:
    """A tiny webhook target: records every request; answers ``statuses`` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    slow_requests: int = 0  # how many of the first requests wait ``delay_s`` before answering
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.deliveries.append(Delivery(str(request.url), dict(request.headers), await request.body()))
            self.arrived.set()
            if self.slow_requests > 0:
                self.slow_requests -= 1
                await asyncio.sleep(self.delay_s)
            return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

        return Starlette(routes=[Route("/hooks/hubspot", hook, methods=["POST"])])

    def events(self) -> list[dict[str, Any]]:
        return [event for delivery in self.deliveries for event in delivery.events]


@dataclass
class Live:
    sandbox: HubSpotSandbox
    receiver: Receiver
    api: httpx.AsyncClient
    served: Served
    hook_url: str


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def live(sandbox: HubSpotSandbox, receiver: Receiver) -> AsyncIterator[Live]:
    """Both over real sockets: the sandbox (its lifespan runs the dispatcher) and the receiver."""
    async with (
        serve(receiver.app(), name="receiver", graceful_s=1) as hook,
        serve(sandbox.app, name="hubspot", graceful_s=1) as served,
    ):
        url = f"{hook.base_url}/hooks/hubspot"
        sandbox.set_webhook_url(url)
        headers = {"Authorization": f"Bearer {sandbox.token}"}
        async with httpx.AsyncClient(base_url=served.base_url, headers=headers) as api:
            yield Live(sandbox, receiver, api, served, url)
