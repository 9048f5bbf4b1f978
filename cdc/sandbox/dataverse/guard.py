"""ASGI middleware in front of the Web API: bearer-token check (401) and service protection (429).

It sits outside :class:`~cdc.sandbox.middleware.SandboxMiddleware`, so a request's injected latency counts
toward the concurrency limit as server time would; answers it gives itself are counted here.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from cdc.sandbox.calls import CallCounter
from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.auth import TokenIssuer, org_url
from cdc.sandbox.dataverse.context import API_PREFIX
from cdc.sandbox.dataverse.protection import ServiceProtection
from cdc.sandbox.middleware import endpoint_of, kind_of

__all__ = ["Guard", "error_response"]


def error_response(error: errors.DataverseError) -> Response:
    if not error.code and not error.message:
        return Response(b"", status_code=error.status, headers=error.headers)
    headers = {"OData-Version": "4.0", **error.headers}
    return Response(
        error.body(), error.status, headers, media_type="application/json; odata.metadata=minimal"
    )


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        router: Router,
        calls: CallCounter,
        issuer: TokenIssuer,
        protection: ServiceProtection,
    ) -> None:
        self.app = app
        self.router = router
        self.calls = calls
        self.issuer = issuer
        self.protection = protection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            grant = self.issuer.check(request.headers.get("authorization"), org_url(request))
            self.protection.enter(grant.client_id)
        except errors.DataverseError as error:
            endpoint = endpoint_of(self.router, scope)
            self.calls.record(endpoint, error.status, kind_of(endpoint, scope))
            await error_response(error)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.protection.leave(grant.client_id)
