"""The Dataverse Web API over aiohttp: bearer auth, the org's CA bundle, OData headers, retries, metrics.

Every answer goes through :func:`cdc.dataverse.errors.classify`; what happens next depends only on the
class it returns:

1. :class:`RetriableError` with ``retry_after`` (429 service protection): counted as a throttle, then
   waited exactly that long; such waits do not use up retries (the server says when it can take the
   request), but ``RetryPolicy.throttles`` (when set) bounds them: then the error goes to the caller.
2. :class:`RetriableError` without it (5xx, network, timeouts): capped exponential backoff with jitter, at
   most ``RetryPolicy.retries`` retries, then the error goes to the caller.
   Both by the one retry policy (`consumers.retries`).
3. :class:`UnauthorizedError` (401): drop msal's cached token, acquire a new one, retry once; a second
   401 goes to the caller (fatal: the app user lost access).
4. Anything else (fatal, expired delta token) goes straight to the caller.

Metrics are labelled with an endpoint template chosen by the caller (``contacts:track``), never a URL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
from multidict import CIMultiDict

from cdc.budget import Budget, BudgetClosedError, CallKind, budget_for, dataverse_limits
from cdc.dataverse.auth import TokenProvider
from cdc.dataverse.errors import (
    DataverseApiError,
    FatalError,
    RetriableError,
    UnauthorizedError,
    classify,
)
from cdc.dataverse.paths import api_root
from cdc.dataverse.proxy import ProxyError, ProxyRoute, proxy_for
from cdc.metrics import Metrics
from cdc.settings import DataverseSettings
from consumers.retries import Retry, RetryPolicy, retrying

__all__ = ["Answer", "DataverseClient"]

log = logging.getLogger("cdc.dataverse")
SYSTEM = "dataverse"
_ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
T = TypeVar("T")
_PROXY_AUTH_REQUIRED = 407
_PROTECTION = {"0x80072322": "requests", "0x80072321": "execution", "0x80072326": "concurrency"}
"""Service protection error codes (fact sheet dataverse.md §4) as the limit's label."""


@dataclass(frozen=True)
class Answer:
    """A successful answer as received: status, headers and the raw body (a ``$batch`` is multipart)."""

    status: int
    headers: Mapping[str, str]
    """Case-insensitive (a ``CIMultiDict``)."""
    body: bytes

    def json_object(self, endpoint: str) -> dict[str, Any]:
        """The body as a JSON object; anything else (a proxy's page, a cut answer) is a `RetriableError`."""
        return _object(_parse(self.body), self.status, endpoint)


class DataverseClient:
    """One aiohttp session for one org. ``start()`` before use, ``close()`` after; close is idempotent."""

    def __init__(
        self,
        settings: DataverseSettings,
        tokens: TokenProvider,
        metrics: Metrics,
        *,
        policy: RetryPolicy | None = None,
        budget: Budget | None = None,
    ) -> None:
        if not settings.base_url:
            raise FatalError(0, "config", "dataverse.base_url (CDC_DATAVERSE__BASE_URL) is required")
        self.base_url = settings.base_url.rstrip("/")
        self.api_root = api_root(self.base_url, settings.api_version)
        self._settings = settings
        self._tokens = tokens
        self._metrics = metrics
        self._policy = policy or RetryPolicy(retries=7)
        self.budget = budget or budget_for(SYSTEM) or Budget(dataverse_limits(settings), metrics=metrics)
        """The role's Dataverse budget (`cdc.budget`), or, outside a role, one of this client's own."""
        self._session: aiohttp.ClientSession | None = None
        try:
            self._proxy: ProxyRoute | None = proxy_for(self.base_url, settings, os.environ)
        except ProxyError as error:
            raise FatalError(0, "config", str(error)) from None

    async def start(self) -> None:
        cafile = str(self._settings.ca_bundle) if self._settings.ca_bundle else None
        context = ssl.create_default_context(cafile=cafile)
        # The proxy (`cdc.dataverse.proxy`) is the session's: every request of this client goes through it,
        # HTTPS tunnelled with CONNECT; its credentials ride in the URL aiohttp is given (the proxy_auth
        # parameter is deprecated in aiohttp 3.14) and never reach a log (`_scrubbed`).
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=self._settings.request_timeout_s),
            headers=_ODATA_HEADERS,
            proxy=self._proxy.with_credentials() if self._proxy is not None else None,
        )

    def _network_error(self, error: BaseException, endpoint: str) -> DataverseApiError:
        """A request that got no answer from Dataverse: retriable, unless the proxy refused our proxy
        credentials (407), which no retry mends (status 0: the gateway pauses, as for refused auth)."""
        text = f"{type(error).__name__}: {error}"
        if self._proxy is not None:
            text = self._proxy.scrub(text)
            if isinstance(error, aiohttp.ClientHttpProxyError) and error.status == _PROXY_AUTH_REQUIRED:
                return FatalError(0, "proxy_auth", self._proxy.refused(), endpoint=endpoint)
        return RetriableError(0, "network", text, endpoint=endpoint)

    async def close(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        await session.close()

    async def get_json(self, url: str, *, endpoint: str, prefer: str | None = None) -> dict[str, Any]:
        """GET ``url`` (absolute, e.g. a nextLink) and return the JSON object, retrying as documented."""
        return await self._retrying(lambda: self._get_once(url, endpoint=endpoint, prefer=prefer), endpoint)

    async def send(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Any request (absolute ``url``), retried as documented; a 2xx/3xx comes back as received."""
        return await self._retrying(
            lambda: self._send_once(method, url, endpoint=endpoint, body=body, headers=headers or {}),
            endpoint,
        )

    async def _retrying(self, once: Callable[[], Awaitable[T]], endpoint: str) -> T:
        try:
            return await self._policed(once)
        except UnauthorizedError:
            log.warning("dataverse %s answered 401; renewing the token once", endpoint)
            await self._tokens.invalidate()
        return await self._policed(once)  # a second 401 goes to the caller

    async def _policed(self, once: Callable[[], Awaitable[T]]) -> T:
        return await retrying(
            once, policy=self._policy, on=self._retriable, what=SYSTEM, on_retry=self._retried
        )

    def _retriable(self, error: Exception) -> bool:
        """A system error, unless the role is stopping (`cdc.hubspot.client.HubSpotClient._retriable`)."""
        return isinstance(error, RetriableError) and not self.budget.closing

    def _retried(self, retry: Retry) -> None:
        self._metrics.retried(retry)
        self._metrics.api_retries.labels(system=SYSTEM).inc()

    def _throttled(self, error: DataverseApiError | None, endpoint: str) -> None:
        """An error naming its wait (a 429's ``Retry-After``) is a throttle: counted before it is raised,
        and by the service protection limit it names (fact sheet §4's codes). It closes every window of the
        budget (the user's next requests are refused whichever limit it crossed), whose calls the process is
        seen wanting meanwhile (`cdc.budget.limiter`, step 4)."""
        if isinstance(error, RetriableError) and error.retry_after is not None:
            self._metrics.api_throttled.labels(system=SYSTEM, endpoint=endpoint).inc()
            policy = _PROTECTION.get(error.code.lower(), "unnamed")
            self._metrics.api_rate_limited.labels(system=SYSTEM, policy=policy).inc()
            windows = self.budget.limits.kinds[CallKind.API]
            error.retry_after = self.budget.throttled(windows, error.retry_after)

    @contextlib.asynccontextmanager
    async def _budgeted(self, endpoint: str) -> AsyncIterator[None]:
        """One request's turn in the budget (`cdc.budget`); a stopping role's wait ends in a
        `RetriableError` that asks for no wait, so the engine gives the batch up."""
        try:
            async with self.budget.spend(CallKind.API):
                yield
        except BudgetClosedError as closed:
            raise RetriableError(0, "stopping", str(closed), endpoint=endpoint, retry_after=0.0) from None

    async def _send_once(
        self, method: str, url: str, *, endpoint: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Answer:
        if self._session is None:
            raise RuntimeError("DataverseClient.start() was not called")
        sent = {**headers, "Authorization": f"Bearer {await self._tokens.token()}"}
        started = time.perf_counter()
        status_label = "network"
        try:
            async with (
                self._budgeted(endpoint),
                self._session.request(method, url, data=body, headers=sent) as response,
            ):
                status_label = str(response.status)
                raw = await response.read()
                received = CIMultiDict(response.headers)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._network_error(exc, endpoint) from exc
        finally:
            self._metrics.api_requests.labels(system=SYSTEM, endpoint=endpoint, status=status_label).inc()
            self._metrics.api_seconds.labels(system=SYSTEM, endpoint=endpoint).observe(
                time.perf_counter() - started
            )
        error = classify(status, _parse(raw) if status >= 400 else None, received, endpoint=endpoint)  # noqa: PLR2004 -- HTTP error range
        self._throttled(error, endpoint)
        if error is not None:
            raise error
        return Answer(status, received, raw)

    async def _get_once(self, url: str, *, endpoint: str, prefer: str | None) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("DataverseClient.start() was not called")
        headers = {"Authorization": f"Bearer {await self._tokens.token()}"}
        if prefer:
            headers["Prefer"] = prefer
        started = time.perf_counter()
        status_label = "network"
        try:
            async with self._budgeted(endpoint), self._session.get(url, headers=headers) as response:
                status_label = str(response.status)
                raw = await response.read()
                body = _parse(raw)
                error = classify(response.status, body, response.headers, endpoint=endpoint)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._network_error(exc, endpoint) from exc
        finally:
            self._metrics.api_requests.labels(system=SYSTEM, endpoint=endpoint, status=status_label).inc()
            self._metrics.api_seconds.labels(system=SYSTEM, endpoint=endpoint).observe(
                time.perf_counter() - started
            )
        self._throttled(error, endpoint)
        if error is not None:
            raise error
        return _object(body, response.status, endpoint)


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _object(body: Any, status: int, endpoint: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RetriableError(status, "body", "answer is not a JSON object", endpoint=endpoint)
    return body
