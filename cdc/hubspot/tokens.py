"""The bearer token of every HubSpot call, by the app's kind of credentials (``hubspot.auth``).

- :class:`StaticToken` -- ``hubspot.token`` as it is: a project app's static token, a service key or a
  legacy private app's token. A 401 cannot be cured by asking again; it is the caller's to report.
- :class:`OAuthTokens` -- access tokens from HubSpot's token endpoint (`cdc.hubspot.paths.Endpoints.token`:
  ``/oauth/2026-09/token``, ``/oauth/2026-03/token``, ``/oauth/v1/token`` for ``legacy``), by the
  ``refresh_token`` grant (an OAuth app) or the ``client_credentials`` grant (scopes, no refresh token:
  asked for again when it ends). The body is form-encoded and holds every parameter: the date-based
  versions take nothing else (fact sheet ``hubspot_2026.md`` §2; hs:docs/api-reference/2026-03/
  authentication/manage-oauth-tokens). An access token lasts 30 minutes (``expires_in``, same page).

A role opens one provider (`cdc.hubspot.client.hubspot_client`) and every task of the role shares it. Its
``asyncio.Lock`` makes each token request single-flight; in order:

1. :meth:`OAuthTokens.token` hands out the access token until :func:`renew_before` its end (counted from
   when the request was sent, so a slow answer errs early); then the first task takes the lock and asks
   for a new one, and the tasks that waited on the lock take that one;
2. a call answered 401 asks :meth:`OAuthTokens.renew` with the token it sent: a new one is asked for once,
   unless another task already did (the current token differs from the refused one), and the call is
   sent again once (`cdc.hubspot.client`);
3. a token endpoint that is down (429, 5xx, network) is a `RetriableError`, waited out by the caller's
   retry policy; while the token in hand has not ended it is used meanwhile, and renewal tried again
   within ``RETRY_RENEWAL_S``;
4. a refused grant (400 ``BAD_REFRESH_TOKEN``, ``invalid_grant``: any other 4xx) is a
   `CredentialsRefusedError` that says what to do. It is logged once when the credentials turn refused,
   shows as ``cdc_hubspot_credentials_refused`` 1 until a token is issued again, and is given back
   without asking again for ``REFUSAL_HOLD_S``, so the role's tasks retrying together make one request.

No token, refresh token or client secret is ever logged, raised or put in a metric: messages carry
HubSpot's status, code and message (scrubbed), never the form sent or the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import orjson
from pydantic import SecretStr

from cdc._redact import scrub
from cdc.hubspot._sent import sent
from cdc.hubspot.errors import CredentialsRefusedError, RetriableError, classify
from cdc.hubspot.paths import Endpoint, endpoints
from cdc.metrics import Metrics
from cdc.settings import HubSpotSettings, require

__all__ = [
    "REFUSAL_HOLD_S",
    "OAuthTokens",
    "StaticToken",
    "TokenSource",
    "renew_before",
    "token_source",
]

log = logging.getLogger(__name__)

RENEW_BEFORE_S = 300.0
RENEW_FRACTION = 0.2
REFUSAL_HOLD_S = 5.0
"""A refusal is given back this long without asking the token endpoint again."""
RETRY_RENEWAL_S = 30.0
"""A renewal that failed while the token in hand lasts is tried again within this (or half what is left)."""
TIMEOUT_S = 30.0

REFRESH_HELP = (
    "the refresh token no longer works (the app was uninstalled, its access revoked, or the value is "
    "wrong): install the app again, exchange the authorization code for a new refresh token, set "
    "hubspot.auth.refresh_token (CDC_HUBSPOT__AUTH__REFRESH_TOKEN) and restart; check "
    "hubspot.auth.client_id and hubspot.client_secret too"
)
CLIENT_CREDENTIALS_HELP = (
    "check hubspot.auth.client_id (CDC_HUBSPOT__AUTH__CLIENT_ID), hubspot.client_secret and that each of "
    "hubspot.auth.scopes is a scope of the app"
)
REINSTALL_HELP = (
    "HubSpot refused an access token its token endpoint had just issued: the app was uninstalled or lost "
    "access to the account; install it again"
)

Answer = tuple[int, bytes, Mapping[str, str]]
Post = Callable[[str, Mapping[str, str]], Awaitable[Answer]]
"""Sends the form to the URL; answers status, body and headers (the one I/O of this module)."""


def renew_before(lifetime_s: float) -> float:
    """How long before its end a token is renewed: 5 minutes, or a fifth of a shorter lifetime."""
    return min(RENEW_BEFORE_S, lifetime_s * RENEW_FRACTION)


class TokenSource(Protocol):
    """What `cdc.hubspot.client.HubSpotClient` asks for the bearer token of each request."""

    @property
    def renewable(self) -> bool:
        """Whether a 401 is worth asking :meth:`renew` for."""

    @property
    def hint(self) -> str:
        """What to do when HubSpot refuses a token even after :meth:`renew`."""

    async def token(self) -> str:
        """A token to send now."""

    async def renew(self, refused: str) -> str:
        """A token other than ``refused`` (which HubSpot answered 401 to)."""


class StaticToken:
    """``hubspot.token``: sent as it is, never renewed."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"

    @property
    def renewable(self) -> bool:
        return False

    @property
    def hint(self) -> str:
        return "check hubspot.token (CDC_HUBSPOT__TOKEN)"

    async def token(self) -> str:
        return self._token

    async def renew(self, refused: str) -> str:  # noqa: ARG002 -- the protocol's signature
        return self._token


@dataclass(frozen=True)
class Issued:
    """An access token and when (on the provider's clock) it ends and is renewed."""

    value: str = field(repr=False)
    lifetime_s: float
    expires_at: float
    renew_at: float


async def _post(url: str, form: Mapping[str, str]) -> Answer:
    """The form, url-encoded in the body, to ``url``: one short-lived session per request (one request in
    25 minutes needs no pool, and nothing is left open between them)."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=dict(form), headers={"Accept": "application/json"}) as response,
    ):
        return response.status, await response.read(), dict(response.headers)


def _json(raw: bytes) -> Mapping[str, Any]:
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, Mapping) else {}


def _why(status: int, body: Mapping[str, Any]) -> str:
    """HubSpot's reason, as one scrubbed line: ``400 BAD_REFRESH_TOKEN: missing or invalid refresh token``.
    The v1 endpoint names it in ``status`` (community-reported, e.g. nango.dev's HubSpot BAD_REFRESH_TOKEN
    page), the date-based ones in ``category``/``subCategory`` (the specs' ``Error``), OAuth in ``error``."""
    named = body.get("status") if body.get("status") not in (None, "error") else None
    code = named or body.get("subCategory") or body.get("category") or body.get("error")
    message = body.get("message") or body.get("error_description") or ""
    text = f"{status} {code}" if code else str(status)
    return scrub(f"{text}: {message}" if message else text)[:300]


class OAuthTokens:
    """Access tokens by the ``refresh_token`` or ``client_credentials`` grant (module docstring)."""

    def __init__(
        self,
        settings: HubSpotSettings,
        metrics: Metrics,
        *,
        role: str = "",
        post: Post = _post,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """``role``: the command whose token this is, in log lines (``role=sync``)."""
        auth = settings.auth
        api = endpoints(settings.api_version)
        self.grant = "refresh_token" if auth.kind == "oauth" else "client_credentials"
        self.endpoint: Endpoint = api.token if self.grant == "refresh_token" else api.client_credentials_token
        self._url = settings.base_url.rstrip("/") + self.endpoint.path()
        self._client_id = auth.client_id or ""
        self._client_secret = settings.client_secret or SecretStr("")
        self._refresh_token = auth.refresh_token or SecretStr("")
        self._scopes = " ".join(auth.scopes)
        self._metrics, self._post, self._now = metrics, post, now
        self._extra = {"role": role} if role else {}
        self._issued: Issued | None = None
        self._held: tuple[CredentialsRefusedError, float] | None = None
        self._refused_since: float | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"OAuthTokens({self.grant} grant at {self.endpoint.label})"

    @property
    def renewable(self) -> bool:
        return True

    @property
    def hint(self) -> str:
        return REINSTALL_HELP

    async def token(self) -> str:
        issued = self._issued
        if issued is not None and self._now() < issued.renew_at:
            return issued.value
        async with self._lock:
            issued = self._issued  # a task that waited on the lock finds the one just issued
            if issued is not None and self._now() < issued.renew_at:
                return issued.value
            return await self._renewed(issued, why="first" if issued is None else "expiring")

    async def renew(self, refused: str) -> str:
        async with self._lock:
            issued = self._issued
            if issued is not None and issued.value != refused and self._now() < issued.renew_at:
                return issued.value  # another task renewed it after this one's call was refused
            return await self._renewed(None, why="refused")

    async def _renewed(self, current: Issued | None, *, why: str) -> str:
        """A new token, asked for under the lock; ``current`` (not refused, still lasting) stands in while
        the endpoint is down or refuses."""
        now = self._now()
        lasting = current if current is not None and now < current.expires_at else None
        if self._held is not None and now < self._held[1]:
            if lasting is not None:
                return lasting.value
            raise self._held[0]
        try:
            issued = await self._request(now)
        except (RetriableError, CredentialsRefusedError) as error:
            if isinstance(error, CredentialsRefusedError):
                self._held = (error, now + REFUSAL_HOLD_S)
                self._turned_refused(error)
            if lasting is None:
                raise
            later = min(RETRY_RENEWAL_S, (lasting.expires_at - now) / 2)
            self._issued = Issued(lasting.value, lasting.lifetime_s, lasting.expires_at, now + later)
            log.warning(
                "HubSpot access token not renewed (%s); the current one lasts %.0f s more and renewal is "
                "tried again in %.0f s",
                error,
                lasting.expires_at - now,
                later,
                extra=self._extra,
            )
            return lasting.value
        self._issued, self._held = issued, None
        self._turned_accepted()
        before = issued.lifetime_s - (issued.renew_at - now)
        if why == "first":
            log.info(
                "HubSpot access token issued (%s grant, %s): valid %.0f s, renewed %.0f s before it ends",
                self.grant,
                self.endpoint.label,
                issued.lifetime_s,
                before,
                extra=self._extra,
            )
        else:
            log.info(
                "HubSpot access token renewed %s (%s grant): the new one is valid %.0f s",
                "before it ended" if why == "expiring" else "after HubSpot refused the old one (401)",
                self.grant,
                issued.lifetime_s,
                extra=self._extra,
            )
        return issued.value

    def _form(self) -> dict[str, str]:
        form = {
            "grant_type": self.grant,
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }
        if self.grant == "refresh_token":
            form["refresh_token"] = self._refresh_token.get_secret_value()
        else:
            form["scope"] = self._scopes
        return form

    async def _request(self, asked_at: float) -> Issued:
        """One request to the token endpoint: the token issued, or the error it means."""
        label = self.endpoint.label
        with sent(self._metrics, label) as request:
            status, raw, headers = await self._post(self._url, self._form())
            request.status = str(status)
        body = _json(raw)
        if 200 <= status < 300:  # noqa: PLR2004 -- the success range
            return self._issued_from(body, asked_at)
        sorted_as = classify(status, body, headers, endpoint=label, now=datetime.now(UTC))
        if isinstance(sorted_as, RetriableError):
            raise RetriableError(
                f"HubSpot {label} answered {_why(status, body)}",
                retry_after=sorted_as.retry_after,
                throttled=sorted_as.throttled,
                status=status,
                endpoint=label,
            )
        help_text = REFRESH_HELP if self.grant == "refresh_token" else CLIENT_CREDENTIALS_HELP
        raise CredentialsRefusedError(
            f"HubSpot refused the {self.grant} grant ({label} answered {_why(status, body)}): {help_text}",
            status=status,
            category=str(body.get("category") or body.get("status") or body.get("error") or "") or None,
            endpoint=label,
        )

    def _issued_from(self, body: Mapping[str, Any], asked_at: float) -> Issued:
        token, expires_in = body.get("access_token"), body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 0.0
        if not isinstance(token, str) or not token or isinstance(expires_in, bool) or lifetime <= 0:
            raise RetriableError(
                f"HubSpot {self.endpoint.label} answered without an access token and its expires_in",
                endpoint=self.endpoint.label,
            )
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token.get_secret_value():
            # HubSpot is reported to answer with the same refresh token; if it ever rotates it, the new one
            # is used from now on. A restart reads hubspot.auth.refresh_token again.
            self._refresh_token = SecretStr(rotated)
            log.warning(
                "HubSpot issued a new refresh token with the access token; it is used from now on, but a "
                "restart reads hubspot.auth.refresh_token: set it to the new one if the old one stops "
                "working",
                extra=self._extra,
            )
        return Issued(token, lifetime, asked_at + lifetime, asked_at + lifetime - renew_before(lifetime))

    def _turned_refused(self, error: CredentialsRefusedError) -> None:
        self._metrics.hubspot_credentials_refused.set(1)
        if self._refused_since is None:
            self._refused_since = self._now()
            log.error("%s", error, extra=self._extra)

    def _turned_accepted(self) -> None:
        if self._refused_since is None:
            return
        log.warning(
            "HubSpot accepts the app's credentials again after %.0f s: its calls resume",
            self._now() - self._refused_since,
            extra=self._extra,
        )
        self._refused_since = None
        self._metrics.hubspot_credentials_refused.set(0)


def token_source(settings: HubSpotSettings, metrics: Metrics, *, command: str) -> TokenSource:
    """The provider ``hubspot.auth`` names; a `cdc.settings.SettingsError` naming the setting when a static
    token is needed and not set (the other kinds are complete by `HubSpotSettings`' own checks)."""
    if settings.auth.kind != "static":
        return OAuthTokens(settings, metrics, role=command)
    token = settings.token.get_secret_value() if settings.token is not None else None
    require(token, "hubspot.token", command)
    assert token is not None  # noqa: S101 -- checked by require
    return StaticToken(token)
