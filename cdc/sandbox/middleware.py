"""ASGI middleware that every emulator's API routes pass through: accounting and injected faults.

Order per API request: find the endpoint (route template) and the call's kind (`cdc.sandbox.calls.call_kind`,
which reads the body of a HubSpot read or search, handed on to the app as received), wait the injected
latency, maybe answer an injected 429 or 503 in the emulator's own error shape, else run the app; then
count the call with its status. Admin routes (``/_admin``) are neither delayed, failed nor counted.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdc.sandbox.calls import CallCounter, call_kind, needs_body
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


def kind_of(endpoint: str, scope: Scope, body: bytes | None = None) -> str:
    """The call's kind (`call_kind`) from its scope: query string and ``Prefer`` header."""
    prefer = b"".join(v for k, v in scope.get("headers", ()) if k.lower() == b"prefer")
    query = scope.get("query_string", b"").decode("latin-1")
    return call_kind(endpoint, query, body, prefer=prefer.decode("latin-1"))


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The request's whole body, and a ``receive`` that hands the app the same messages again."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    replay = iter(messages)

    async def again() -> Message:
        return next(replay, None) or await receive()

    return body, again


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

    async def _injected(self, scope: Scope, receive: Receive) -> Response | None:
        """The added latency, then the 429 or 503 the dice chose for this call, if any."""
        await self.faults.delay()
        knobs = self.faults.knobs
        if self.faults.roll(knobs.throttle_rate):
            return self.throttled(Request(scope, receive))
        if self.faults.roll(knobs.error_rate):
            return self.unavailable(Request(scope, receive))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(self.router, scope)
        body = None
        if needs_body(endpoint):
            body, receive = await _buffered(receive)
        kind = kind_of(endpoint, scope, body)
        faulted = scope["path"].startswith(self.faulted_prefix)
        injected = await self._injected(scope, receive) if faulted else None
        if injected is not None:
            self.calls.record(endpoint, injected.status_code, kind)
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
            self.calls.record(endpoint, status, kind)
