"""The Dataverse Web API over aiohttp: bearer auth, the org's CA bundle, OData headers, retries, metrics.

Every answer goes through :func:`cdc.dataverse.errors.classify`; what happens next depends only on the
class it returns:

1. :class:`RetriableError` with ``retry_after`` (429 service protection): wait exactly that long, count a
   throttle; these waits do not use up attempts (the server says when it can take the request).
2. :class:`RetriableError` without it (5xx, network, timeouts): exponential backoff with full jitter, at
   most ``RetryPolicy.attempts`` attempts, then the error goes to the caller.
3. :class:`UnauthorizedError` (401): drop msal's cached token, acquire a new one, retry once; a second
   401 goes to the caller (fatal: the app user lost access).
4. Anything else (fatal, expired delta token) goes straight to the caller.

Metrics are labelled with an endpoint template chosen by the caller (``contacts:track``), never a URL.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from cdc.dataverse.auth import TokenProvider
from cdc.dataverse.errors import (
    FatalError,
    RetriableError,
    UnauthorizedError,
    classify,
)
from cdc.metrics import Metrics
from cdc.settings import DataverseSettings

__all__ = ["DataverseClient", "RetryPolicy"]

log = logging.getLogger("cdc.dataverse")
SYSTEM = "dataverse"
_ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for 5xx and network errors; tests pass a fast one instead of patching sleeps."""

    attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (attempt counts from 0)."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0**attempt))


class DataverseClient:
    """One aiohttp session for one org. ``start()`` before use, ``close()`` after; close is idempotent."""

    def __init__(
        self,
        settings: DataverseSettings,
        tokens: TokenProvider,
        metrics: Metrics,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        if not settings.base_url:
            raise FatalError(0, "config", "dataverse.base_url (CDC_DATAVERSE__BASE_URL) is required")
        self.base_url = settings.base_url.rstrip("/")
        self.api_root = f"{self.base_url}/api/data/{settings.api_version}"
        self._settings = settings
        self._tokens = tokens
        self._metrics = metrics
        self._policy = policy or RetryPolicy()
        self._rng = random.Random()  # noqa: S311 -- jitter, not cryptography
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        cafile = str(self._settings.ca_bundle) if self._settings.ca_bundle else None
        context = ssl.create_default_context(cafile=cafile)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=self._settings.request_timeout_s),
            headers=_ODATA_HEADERS,
        )

    async def close(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        await session.close()

    async def get_json(self, url: str, *, endpoint: str, prefer: str | None = None) -> dict[str, Any]:
        """GET ``url`` (absolute, e.g. a nextLink) and return the JSON object, retrying as documented."""
        attempt = 0
        renewed = False
        while True:
            try:
                return await self._get_once(url, endpoint=endpoint, prefer=prefer)
            except UnauthorizedError:
                if renewed:
                    raise
                renewed = True
                log.warning("dataverse %s answered 401; renewing the token once", endpoint)
                await self._tokens.invalidate()
            except RetriableError as error:
                if error.retry_after is not None:
                    self._metrics.api_throttled.labels(system=SYSTEM, endpoint=endpoint).inc()
                    delay = error.retry_after
                else:
                    if attempt + 1 >= self._policy.attempts:
                        raise
                    delay = self._policy.backoff(attempt, self._rng)
                    attempt += 1
                self._metrics.api_retries.labels(system=SYSTEM).inc()
                log.warning(
                    "dataverse %s: %s %s; retrying in %.2fs", endpoint, error.status, error.code, delay
                )
                await asyncio.sleep(delay)

    async def _get_once(self, url: str, *, endpoint: str, prefer: str | None) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("DataverseClient.start() was not called")
        headers = {"Authorization": f"Bearer {await self._tokens.token()}"}
        if prefer:
            headers["Prefer"] = prefer
        started = time.perf_counter()
        status_label = "network"
        try:
            async with self._session.get(url, headers=headers) as response:
                status_label = str(response.status)
                raw = await response.read()
                body = _parse(raw)
                error = classify(response.status, body, response.headers, endpoint=endpoint)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetriableError(0, "network", f"{type(exc).__name__}: {exc}", endpoint=endpoint) from exc
        finally:
            self._metrics.api_requests.labels(system=SYSTEM, endpoint=endpoint, status=status_label).inc()
            self._metrics.api_seconds.labels(system=SYSTEM, endpoint=endpoint).observe(
                time.perf_counter() - started
            )
        if error is not None:
            raise error
        if not isinstance(body, dict):
            raise RetriableError(response.status, "body", "answer is not a JSON object", endpoint=endpoint)
        return body


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
