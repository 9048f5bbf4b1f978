"""ASGI middleware in front of the Web API: the URL length limit (414), bearer-token check (401) and
service protection (429).

A URL longer than 32 KB is refused before anything else ("Max URL length 32 KB", fact sheet dataverse.md
§2.1, from Microsoft's compose-http-requests page). The answer's shape is not documented; the sandbox gives
what the HTTP.sys front end of Windows servers gives, a 414 with an HTML body and no OData error, so a client
that expects a JSON error body on every failure finds out here rather than in production.

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

__all__ = ["MAX_URL_CHARS", "Guard", "error_response"]

MAX_URL_CHARS = 32 * 1024
"""The longest URL (path and query) the Web API takes (dataverse.md §2.1)."""
TOO_LONG = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    b"<HTML><HEAD><TITLE>Request URL Too Long</TITLE></HEAD>\r\n"
    b"<BODY><h2>Request URL Too Long</h2>\r\n<hr><p>HTTP Error 414. The request URL is too long.</p>\r\n"
    b"</BODY></HTML>\r\n"
)


def url_chars(scope: Scope) -> int:
    """The request's URL length as sent: the raw path and the query string."""
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string") or b""
    return len(path) + (len(query) + 1 if query else 0)


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
        if url_chars(scope) > MAX_URL_CHARS:
            endpoint = endpoint_of(self.router, scope)
            self.calls.record(endpoint, 414, kind_of(endpoint, scope))
            await Response(TOO_LONG, 414, media_type="text/html")(scope, receive, send)
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
