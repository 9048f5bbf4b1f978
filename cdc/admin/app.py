"""The admin page's ASGI app: the login, the views of `cdc.admin.views`, the guards of `cdc.admin.security`.

Middleware, outermost first: security headers (no framing, no script, no referrer), the signed session
cookie (HttpOnly, SameSite=Lax, Secure unless ``admin.secure_cookies`` is off, ``max_age``), then
:class:`~cdc.admin.security.RequireLogin`, then :class:`~cdc.admin.views.paused.PauseBanner` (what is
paused, on every page). Errors are pages: 403 (a bad CSRF token), 404 (an unknown
record or letter), 429 (too many failed logins), each saying what to do.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdc.admin.pages import posted, redirect, render, templates
from cdc.admin.passwords import verify_nobody, verify_password
from cdc.admin.security import LoginLimiter, RequireLogin, start_session
from cdc.admin.source import HealthSource, NotFoundError
from cdc.admin.views import VIEWS
from cdc.admin.views.paused import PauseBanner
from cdc.dataverse.errors import DataverseApiError
from cdc.exits import CliError
from cdc.hubspot.errors import HubSpotApiError
from cdc.settings import AdminSettings
from cdc.sources.publisher import PublishUnavailableError
from streams.admin import KafkaUnavailableError

__all__ = ["SESSION_COOKIE", "create_app"]

SESSION_COOKIE = "cdc_admin"
UNAVAILABLE: tuple[type[Exception], ...] = (
    KafkaUnavailableError,
    KafkaError,  # the client's own, e.g. a group coordinator still loading on a broker that just started
    CliError,
    PublishUnavailableError,
    HubSpotApiError,
    DataverseApiError,
)
"""What a view's read or action may meet that is nobody's bug: a 503 page saying what did not answer."""
HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, sending if scope["type"] == "http" else send)


def _local(path: str | None) -> str:
    """Where to go after login: a path of this site only (never ``//host`` or a URL)."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


def create_app(
    settings: AdminSettings,
    source: HealthSource,
    *,
    users: Mapping[str, str] | None = None,
    secret: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The app; ``users`` (name -> hash) and ``secret`` default to the settings' (a random secret when
    none is set); ``clock`` is the sessions' wall clock (tests move it past the expiry)."""
    known = dict(users) if users is not None else {n: h.get_secret_value() for n, h in settings.users.items()}
    key = secret or (settings.session_secret.get_secret_value() if settings.session_secret else None)
    limiter = LoginLimiter(settings.login_attempts, settings.login_window_s)

    async def login_form(request: Request) -> Response:
        return render(request, "login.html", {"next": _local(request.query_params.get("next"))})

    async def login(request: Request) -> Response:
        address = request.client.host if request.client else "-"
        wait = limiter.retry_after(address)
        if wait > 0:
            raise HTTPException(429, f"too many failed logins from {address}: try again in {wait:.0f} s")
        form = await posted(request)
        name, password = form.get("user", ""), form.get("password", "")
        stored = known.get(name)
        ok = verify_password(password, stored) if stored is not None else verify_nobody(password)
        if not ok:
            limiter.failed(address)
            return render(
                request, "login.html", {"next": _local(form.get("next", "")), "error": True}, status=401
            )
        limiter.succeeded(address)
        start_session(request.session, name, clock())
        return redirect(_local(form.get("next", "")))

    async def logout(request: Request) -> Response:
        await posted(request)
        request.session.clear()
        return redirect("/login")

    async def error_page(request: Request, error: Exception) -> Response:
        if isinstance(error, NotFoundError):
            status, detail = 404, str(error)
        elif isinstance(error, HTTPException):
            status, detail = error.status_code, error.detail
        else:  # Kafka or a CRM did not answer, or a topic is missing: their messages carry no credential
            status, detail = 503, f"{error}; try again once it answers (`cdc status` says more)"
        return render(request, "error.html", {"status": status, "detail": detail}, status=status)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
        *(route for view in VIEWS for route in view.routes),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=key or secrets.token_urlsafe(32),
                session_cookie=SESSION_COOKIE,
                max_age=settings.session_max_age_s,
                same_site="lax",
                https_only=settings.secure_cookies,
            ),
            Middleware(RequireLogin, max_age_s=settings.session_max_age_s, clock=clock),
            Middleware(PauseBanner),
        ],
        exception_handlers={
            HTTPException: error_page,
            NotFoundError: error_page,
            **dict.fromkeys(UNAVAILABLE, error_page),
        },
    )
    app.state.source = source
    app.state.templates = templates()
    app.state.views = VIEWS
    return app
