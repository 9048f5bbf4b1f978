"""The admin page's guards: who is logged in (a signed session with an absolute expiry), the CSRF token
every POST carries, and the failed-login limit per address.

The session lives in a cookie signed by starlette's ``SessionMiddleware`` (itsdangerous), so any replica
reads it; it holds the user, the login time and the CSRF token, never a password or a hash. The login
limit is per replica (an attacker spread over replicas gets ``replicas x attempts``): it slows guessing, the
scrypt cost (`cdc.admin.passwords`) does the rest.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LoginLimiter", "RequireLogin", "csrf_token", "csrf_valid", "current_user", "start_session"]

KEPT_ADDRESSES = 10_000
OPEN_PATHS = ("/login", "/static/", "/healthz")
"""Reachable without a session: the login form, the stylesheet it needs, and the liveness probe (which
answers ``ok`` and nothing else)."""


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, made on first use (a session starts with one before login)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_valid(session: MutableMapping[str, Any], sent: object) -> bool:
    """Whether ``sent`` is the session's token, compared in constant time."""
    token = session.get("csrf")
    return (
        isinstance(token, str)
        and isinstance(sent, str)
        and hmac.compare_digest(token.encode(), sent.encode())
    )


def start_session(session: MutableMapping[str, Any], user: str, now: float) -> None:
    """A fresh session for ``user``: whatever the anonymous one held (its CSRF token too) is dropped."""
    session.clear()
    session.update({"user": user, "login_at": now, "csrf": secrets.token_urlsafe(32)})


def current_user(session: MutableMapping[str, Any], *, now: float, max_age_s: float) -> str | None:
    """The logged-in user, or None: no session, or one older than ``max_age_s`` since its login (the
    cookie's signature is re-dated on every answer, so its own age never runs out while in use)."""
    user, at = session.get("user"), session.get("login_at")
    if not isinstance(user, str) or not isinstance(at, int | float) or now - at > max_age_s:
        return None
    return user


class RequireLogin:
    """Inside the session middleware: every path but `OPEN_PATHS` needs a logged-in user; without one a
    request is sent to the login page (303, so a POST is never replayed), having changed nothing."""

    def __init__(self, app: ASGIApp, *, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.max_age_s = max_age_s
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        user = current_user(connection.session, now=self.clock(), max_age_s=self.max_age_s)
        if user is None:
            connection.session.pop("user", None)
            wanted = scope["path"] if scope["method"] == "GET" else "/"
            response = RedirectResponse(f"/login?next={quote(wanted)}", status_code=303)
            await response(scope, receive, send)
            return
        scope["user_name"] = user
        await self.app(scope, receive, send)


@dataclass
class LoginLimiter:
    """At most ``attempts`` failed logins per address in ``window_s``; a success clears the address.
    Addresses whose failures are all older than the window are forgotten (at most `KEPT_ADDRESSES` kept)."""

    attempts: int
    window_s: float
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        seen = self._recent(address)
        if len(seen) < self.attempts:
            return 0.0
        return max(0.0, seen[0] + self.window_s - self.clock())

    def failed(self, address: str) -> None:
        if len(self._failures) >= KEPT_ADDRESSES:
            cutoff = self.clock() - self.window_s
            self._failures = {a: s for a, s in self._failures.items() if s and s[-1] > cutoff}
        self._failures.setdefault(address, deque()).append(self.clock())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        seen = self._failures.get(address, deque())
        cutoff = self.clock() - self.window_s
        while seen and seen[0] <= cutoff:
            seen.popleft()
        return seen
