"""The emulator's OAuth app: its installation, the token endpoint, and the access tokens it issues.

One app (``client_id`` and the sandbox's client secret) installed in the one portal. An installation (at
start, and each ``/_admin/oauth/authorize``: what a user's consent does) grants the app's scopes and gives
an authorization code, which the token endpoint exchanges once for a refresh token and an access token.
Routes, one per served version (`cdc.sandbox.hubspot.versions`): ``POST /oauth/v1/token``,
``/oauth/2026-03/token``, ``/oauth/2026-09/token``. What is served, and its sources:

- the body is form-encoded; the dated versions read their parameters from the body alone ("requiring all
  parameters to be in the request body rather than as query parameters", hs:docs/api-reference/2026-03/
  authentication/manage-oauth-tokens), v1 also from the query (its spec lists ``client_secret`` and
  ``refresh_token`` as query parameters); ``grant_type`` as the version lists it (``versions.ApiVersion
  .grants``: the 2026-09 draft has no ``client_credentials``);
- an access token "expires after 30 minutes" (same page): ``lifetime_s`` 1800, which the admin API sets
  shorter so tests see tokens end; a client-credentials token lasts as long (its own lifetime is
  UNVERIFIED: the docs call it "different");
- the answer is ``AccessTokenResponse`` (``access_token``, ``refresh_token``, ``expires_in``,
  ``token_type``, ``token_use``, ``hub_id``, ``scopes``), or ``ClientCredentialsTokenResponse`` without a
  refresh token (spec:Auth/Oauth/Rollouts/279897/2026-03/oauth.json); a refresh answers with the same
  refresh token (reported for HubSpot by vaultgate's notes: **[2nd]**);
- a refused refresh token: v1 answers 400 ``{"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid
  refresh token"}`` (nango.dev/blog/hubspot-oauth-bad-refresh-token; HGData/mk-node-hubspot issue 64), a
  refused code 400 ``BAD_AUTH_CODE`` "missing or unknown auth code" (HGData/mk-node-hubspot issue 87). The
  dated versions answer in the specs' ``Error`` shape (``category``, ``correlationId``, ``message``); the
  category is UNVERIFIED: ``VALIDATION_ERROR`` (the endpoint page's example) with v1's code as
  ``subCategory``. Wrong client credentials, a grant type not taken and missing parameters are UNVERIFIED
  in wording and answered alike (400 ``BAD_CLIENT_ID``, ``BAD_GRANT_TYPE``, ``BAD_REQUEST``, ``BAD_SCOPES``);
- a refresh token revoked (``/_admin/oauth/revoke``: the app uninstalled, access revoked) is refused; the
  access tokens issued with it work until they end ("Access tokens generated with the refresh token will not
  be affected", the v1 spec on deleting a refresh token). ``/_admin/token/revoke`` refuses everything;
- an ended access token is answered 401 ``EXPIRED_AUTHENTICATION``, "The OAuth token used to make this call
  expired N minute(s) ago." (useparagon.com's page on that HubSpot error), by `cdc.sandbox.hubspot.api`.

Tokens come from a seeded generator: opaque to everything but this module.
"""

from __future__ import annotations

import base64
import hmac
import random
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.clock import Clock
from cdc.sandbox.hubspot.scopes import ALL_SCOPES, JOURNAL_SCOPES
from cdc.sandbox.hubspot.versions import SERVED, ApiVersion

__all__ = ["ACCESS_TOKEN_LIFETIME_S", "DEFAULT_REDIRECT", "AccessGrant", "OAuthApp", "token_routes"]

ACCESS_TOKEN_LIFETIME_S = 1800
DEFAULT_REDIRECT = "https://localhost/oauth-callback"
REFRESH_MESSAGE = "missing or invalid refresh token"
CODE_MESSAGE = "missing or unknown auth code"
KEPT_EXPIRED = 10_000
"""Ended access tokens remembered (to answer EXPIRED_AUTHENTICATION rather than an unknown token)."""


@dataclass(frozen=True)
class AccessGrant:
    """What an access token may do, and until when (sandbox clock, seconds since the epoch)."""

    scopes: frozenset[str] | None
    """None: every scope (the portal's static token)."""
    expires_at: float


@dataclass
class _Refresh:
    scopes: frozenset[str]
    revoked: bool = False


@dataclass(frozen=True)
class _Code:
    scopes: frozenset[str]
    redirect_uri: str


def _json(body: Mapping[str, Any], status: int) -> Response:
    return Response(
        orjson.dumps(body), status, media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _refused(version: ApiVersion, code: str, message: str, correlation_id: str) -> Response:
    """400 in the version's shape (module docstring)."""
    if not version.dated:
        return _json({"status": code, "message": message}, 400)
    return _json(
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "subCategory": code,
            "message": message,
            "correlationId": correlation_id,
        },
        400,
    )


class OAuthApp:
    """The app's grants and tokens (module docstring)."""

    def __init__(self, *, clock: Clock, seed: int, client_secret: str, portal_id: int) -> None:
        self.clock = clock
        self._random = random.Random(f"hubspot-oauth:{seed}")  # noqa: S311 -- reproducible sandbox tokens
        self.client_id = self._uuid()
        self.client_secret = client_secret
        self.portal_id = portal_id
        self.scopes: frozenset[str] = ALL_SCOPES
        """What an installation grants (``/_admin/oauth`` narrows it; tokens issued before keep theirs)."""
        self.lifetime_s: float = ACCESS_TOKEN_LIFETIME_S
        self.issued: Counter[str] = Counter()
        """Access tokens issued, by grant type."""
        self._refresh: dict[str, _Refresh] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, AccessGrant] = {}
        self.refresh_token = self._install()
        """The first installation's refresh token (``/_admin/oauth``): what the daemon is configured with."""

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _install(self, scopes: frozenset[str] | None = None) -> str:
        token = self._uuid()
        self._refresh[token] = _Refresh(self.scopes if scopes is None else scopes)
        return token

    def authorize(self, scopes: frozenset[str] | None = None, redirect_uri: str = DEFAULT_REDIRECT) -> str:
        """A user installs the app (again): the code its redirect carries, exchangeable once."""
        code = self._uuid()
        self._codes[code] = _Code(self.scopes if scopes is None else scopes, redirect_uri)
        return code

    def revoke(self, refresh_token: str | None = None, *, revoked: bool = True) -> bool:
        """Revoke (or restore) a refresh token (default: every one); whether any was found."""
        grants = [self._refresh[refresh_token]] if refresh_token in self._refresh else []
        if refresh_token is None:
            grants = list(self._refresh.values())
        for grant in grants:
            grant.revoked = revoked
        return bool(grants)

    def expire_access_tokens(self) -> int:
        """Every access token ends now (as after a long pause); how many were still valid."""
        now = self.clock.time()
        live = [t for t, g in self._access.items() if g.expires_at > now]
        for token in live:
            self._access[token] = AccessGrant(self._access[token].scopes, now)
        return len(live)

    @property
    def access_tokens(self) -> tuple[str, ...]:
        """Every access token issued and remembered (for tests that look for them where they must not be)."""
        return tuple(self._access)

    def grant_of(self, token: str) -> AccessGrant | None:
        """The grant of an access token this app issued (ended or not), else None."""
        return self._access.get(token)

    def _issue(self, scopes: frozenset[str], grant: str) -> tuple[str, float]:
        raw = self._random.getrandbits(8 * 96).to_bytes(96, "big")
        token = "C" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        self._access[token] = AccessGrant(scopes, self.clock.time() + self.lifetime_s)
        if len(self._access) > KEPT_EXPIRED:
            now = self.clock.time()
            for old in [t for t, g in self._access.items() if g.expires_at <= now][: KEPT_EXPIRED // 2]:
                del self._access[old]
        self.issued[grant] += 1
        return token, self.lifetime_s

    def exchange(self, version: ApiVersion, form: Mapping[str, str], correlation_id: str) -> Response:
        """One request to the token endpoint of ``version`` with the parameters ``form``."""
        grant = form.get("grant_type", "")
        if grant not in version.grants:
            return _refused(
                version, "BAD_GRANT_TYPE", f"unsupported grant_type: {grant or '(none)'}", correlation_id
            )
        client_ok = hmac.compare_digest(form.get("client_id", "").encode(), self.client_id.encode())
        secret_ok = hmac.compare_digest(form.get("client_secret", "").encode(), self.client_secret.encode())
        if not (client_ok and secret_ok):
            return _refused(
                version, "BAD_CLIENT_ID", "missing or invalid client id or secret", correlation_id
            )
        refresh: str | None = None
        if grant == "refresh_token":
            refresh = form.get("refresh_token", "")
            held = self._refresh.get(refresh)
            if held is None or held.revoked:
                return _refused(version, "BAD_REFRESH_TOKEN", REFRESH_MESSAGE, correlation_id)
            scopes = held.scopes
        elif grant == "authorization_code":
            code = self._codes.get(form.get("code", ""))
            if code is None or form.get("redirect_uri") != code.redirect_uri:
                return _refused(version, "BAD_AUTH_CODE", CODE_MESSAGE, correlation_id)
            del self._codes[form["code"]]
            scopes, refresh = code.scopes, self._install(code.scopes)
        else:
            asked = frozenset(form.get("scope", "").split())
            # The journal's scopes come with the client-credentials grant alone (fact sheet §2, §5).
            grantable = self.scopes | JOURNAL_SCOPES
            if not asked or not asked <= grantable:
                unknown = " ".join(sorted(asked - grantable)) or "(none)"
                return _refused(
                    version, "BAD_SCOPES", f"scopes not granted to the app: {unknown}", correlation_id
                )
            scopes = asked
        token, lifetime = self._issue(scopes, grant)
        answer: dict[str, Any] = {
            "access_token": token,
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
            "token_type": "bearer",
            "token_use": "client_credentials" if refresh is None else "access_token",
            "hub_id": self.portal_id,
            "scopes": sorted(scopes),
        }
        if refresh is not None:
            answer["refresh_token"] = refresh
        return _json(answer, 200)


async def _form(request: Request, *, query_too: bool) -> dict[str, str]:
    """The form's parameters (the last of a repeated one); v1's query parameters too, below the body's."""
    found = dict(request.query_params) if query_too else {}
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/x-www-form-urlencoded":
        found.update(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    return found


def token_routes(app: OAuthApp, correlation_id: Any) -> list[Route]:
    """The token endpoint of every served version; ``correlation_id()`` draws an error's id."""

    def route(version: ApiVersion) -> Route:
        async def token(request: Request) -> Response:
            form = await _form(request, query_too=not version.dated)
            return app.exchange(version, form, correlation_id())

        return Route(version.oauth, token, methods=["POST"])

    return [route(version) for version in SERVED.values()]
