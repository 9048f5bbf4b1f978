"""ASGI middleware that every emulator's API routes pass through: accounting and injected faults.

Order per API request: find the endpoint (route template), wait the injected latency, maybe answer an
injected 429 or 503 in the emulator's own error shape, else run the app; then count the call with its
status. Admin routes (``/_admin``) are neither delayed, failed nor counted.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdc.sandbox.calls import CallCounter
from cdc.sandbox.faults import Faults

ADMIN_PREFIX = "/_admin"
ErrorResponder = Callable[[Request], Response]


def endpoint_of(router: Router, scope: Scope) -> str:
    """``"GET /crm/objects/2026-09/{objectType}/{objectId}"``; ``"<METHOD> (unmatched)"`` for a 404 path."""
    for route in router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE and isinstance(route, Route):
            return f"{scope['method']} {route.path}"
    return f"{scope['method']} (unmatched)"


class SandboxMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        router: Router,
        faults: Faults,
        calls: CallCounter,
        throttled: ErrorResponder,
        unavailable: ErrorResponder,
        faulted_prefix: str = "/",
    ) -> None:
        """``faulted_prefix``: only paths under it get injected faults (the Dataverse emulator's token
        service is Entra ID, another service, whose errors have the OAuth shape, not the Web API's)."""
        self.app = app
        self.faulted_prefix = faulted_prefix
        self.router = router
        self.faults = faults
        self.calls = calls
        self.throttled = throttled
        self.unavailable = unavailable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(self.router, scope)
        faulted = scope["path"].startswith(self.faulted_prefix)
        if faulted:
            await self.faults.delay()
        knobs = self.faults.knobs
        injected: Response | None = None
        if not faulted:
            pass
        elif self.faults.roll(knobs.throttle_rate):
            injected = self.throttled(Request(scope, receive))
        elif self.faults.roll(knobs.error_rate):
            injected = self.unavailable(Request(scope, receive))
        if injected is not None:
            self.calls.record(endpoint, injected.status_code)
            await injected(scope, receive, send)
            return

        status = 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if faulted:
                    await self.faults.answer_delay()
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            self.calls.record(endpoint, status)
