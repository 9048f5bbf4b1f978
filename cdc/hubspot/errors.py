"""HubSpot API answers sorted by what the caller does next, and the one function that sorts them.

- :class:`RetriableError` -- wait ``retry_after`` seconds (or back off when it is None) and send again:
  429 (every policy: the burst window, search's secondly limit, even ``DAILY``, which is long but ends),
  423 locks, 477 migrations, 5xx and network errors.
- :class:`FatalError` -- nothing will change by retrying; stop and tell the operator: 401 (the token:
  :class:`CredentialsRefusedError`, as is a refused token grant, `cdc.hubspot.tokens`), 403 (missing
  scopes: the message names the scopes HubSpot asks for).
- :class:`RequestError` -- this request cannot succeed as sent (400, 404, 409, 414 ...): for a record
  write it is that record's problem (dead letter); for a search it is our bug or configuration.

Numbers come from the fact sheet (``reference/hubspot.md`` §3.4, §5.2). :func:`classify` is pure: no clock
read (``now`` is passed in), no randomness (jitter is the retry policy's business).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "DAILY_RECHECK_S",
    "CredentialsRefusedError",
    "FatalError",
    "HubSpotApiError",
    "RequestError",
    "RetriableError",
    "classify",
    "missing_scopes",
]

TEN_SECONDLY_DEFAULT_S = 10.0
SECONDLY_WAIT_S = 1.0
LOCKED_WAIT_S = 2.0
DAILY_RECHECK_S = 3600.0
"""A DAILY 429 is retried at the next UTC midnight, or within the hour (the portal's time zone may differ)."""
_BACKOFF_STATUSES = frozenset({500, 502, 503, 504, 521, 522, 523, 524, 525, 526})


class HubSpotApiError(Exception):
    """An answer HubSpot gave (or failed to give); the message is safe to log (no token, no record data)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        category: str | None = None,
        correlation_id: str | None = None,
        endpoint: str = "",
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.body: Mapping[str, Any] = body or {}
        """HubSpot's error body (``category``, ``message``, ``errors[].code`` / ``context``): what a refused
        record write is dead-lettered with. Never logged whole: messages may quote a value."""
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.endpoint = endpoint


class RetriableError(HubSpotApiError):
    """Send again later: after ``retry_after`` seconds, or after an exponential backoff when None."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, throttled: bool = False, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.throttled = throttled


class FatalError(HubSpotApiError):
    """Retrying cannot help (credentials, scopes): stop the component and say what to fix."""


class CredentialsRefusedError(FatalError):
    """HubSpot refuses the app's credentials: an API call answered 401, or the token endpoint refused the
    refresh token or client credentials. Fatal before any call succeeded (the settings are wrong); after
    one, the role pauses and tries again (the token revoked, the app uninstalled, until it is fixed)."""


def missing_scopes(body: Mapping[str, Any]) -> list[str]:
    """The scopes a 403 ``MISSING_SCOPES`` answer names: ``errors[].context.requiredGranularScopes`` (or
    ``requiredScopes``, older answers; hubspot-api-nodejs issue 268), or a ``missingScopes`` context
    (the specs' ``Error`` example)."""
    contexts = [body.get("context")]
    contexts += [e.get("context") for e in body.get("errors") or [] if isinstance(e, Mapping)]
    found: list[str] = []
    for context in contexts:
        if not isinstance(context, Mapping):
            continue
        for key in ("requiredGranularScopes", "requiredScopes", "missingScopes"):
            names = context.get(key)
            if isinstance(names, list):
                found += [str(n) for n in names if str(n) not in found]
    return found


class RequestError(HubSpotApiError):
    """This request is refused as sent (validation, not found, conflict): the caller decides."""


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _until_daily_reset(now: datetime) -> float:
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return min((midnight - now).total_seconds() + 1.0, DAILY_RECHECK_S)


def _throttle_wait(body: Mapping[str, Any], headers: Mapping[str, str], now: datetime) -> float:
    """How long a 429 asks us to wait, by the limit it names (§5.2)."""
    retry_after = _float(_header(headers, "Retry-After"))
    if retry_after is not None and retry_after >= 0:
        return retry_after
    policy = str(body.get("policyName") or "").upper()
    message = str(body.get("message") or "").lower()
    if policy == "DAILY" or "daily limit" in message:
        return _until_daily_reset(now.astimezone(UTC))
    if policy == "SECONDLY" or "secondly limit" in message:
        return SECONDLY_WAIT_S
    # TEN_SECONDLY_ROLLING (or an unnamed policy): the rolling window empties within one interval.
    interval_ms = _float(_header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds"))
    return interval_ms / 1000 if interval_ms and interval_ms > 0 else TEN_SECONDLY_DEFAULT_S


def classify(  # noqa: PLR0911 -- one return per family of answers reads best
    status: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    endpoint: str,
    now: datetime,
) -> HubSpotApiError | None:
    """The error an answer means, or None for a success (2xx, including a batch's 207)."""
    if 200 <= status < 300:  # noqa: PLR2004 -- the success range
        return None
    fields: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    detail = str(fields.get("message") or "")[:300]
    kw: dict[str, Any] = {
        "status": status,
        "category": fields.get("category") or fields.get("errorType"),
        "correlation_id": fields.get("correlationId"),
        "endpoint": endpoint,
        "body": fields,
    }
    where = f"HubSpot {endpoint} answered {status}"
    if status == 429:  # noqa: PLR2004
        wait = _throttle_wait(fields, headers, now)
        policy = fields.get("policyName") or "unnamed"
        return RetriableError(f"{where} ({policy} limit): {detail}", retry_after=wait, throttled=True, **kw)
    if status == 401:  # noqa: PLR2004
        return CredentialsRefusedError(
            f"{where}: the token was refused; check hubspot.token (CDC_HUBSPOT__TOKEN): {detail}", **kw
        )
    if status == 403:  # noqa: PLR2004
        scopes = missing_scopes(fields)
        needs = f" (it needs one of: {', '.join(scopes)})" if scopes else ""
        return FatalError(
            f"{where}: the app lacks a scope for this call{needs}; add it to the app's scopes and "
            f"update the app's installation: {detail}",
            **kw,
        )
    if status == 423:  # noqa: PLR2004 -- locked by heavy syncing; locks last 2 s
        return RetriableError(f"{where} (locked): {detail}", retry_after=LOCKED_WAIT_S, **kw)
    if status == 477:  # noqa: PLR2004 -- portal migrating between data centres
        asked = _float(_header(headers, "Retry-After"))
        return RetriableError(f"{where} (migrating): {detail}", retry_after=asked or 60.0, **kw)
    if status in _BACKOFF_STATUSES or status >= 500:  # noqa: PLR2004
        return RetriableError(f"{where}: {detail or 'server error'}", **kw)
    return RequestError(f"{where}: {detail or 'request refused'}", **kw)
