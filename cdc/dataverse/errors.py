"""Dataverse API errors, sorted by what the caller does next, and the one function that sorts them.

:func:`classify` is the only place that reads an HTTP status and a Dataverse error code (fact sheet §4-5):

- :class:`RetriableError` -- throttled (429, wait ``retry_after``), 5xx, transient SQL codes, network;
- :class:`UnauthorizedError` -- 401: drop the cached token, acquire a new one once, then it is fatal;
- :class:`ExpiredDeltaTokenError` -- ``0x80044352``: forget the delta link and start a full pass;
- :class:`FatalError` -- anything else (403 privilege, 400 bad query, 404 table): a human must act.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "EXPIRED_VERSION_STAMP",
    "DataverseApiError",
    "ExpiredDeltaTokenError",
    "FatalError",
    "RetriableError",
    "UnauthorizedError",
    "classify",
    "retry_after_seconds",
]

EXPIRED_VERSION_STAMP = "0x80044352"
# Codes that mean "try again later" whatever the status says (fact sheet §5).
_TRANSIENT_CODES = frozenset(
    {
        "0x80072322",  # service protection: requests per window
        "0x80072321",  # service protection: execution time
        "0x80072326",  # service protection: concurrent requests
        "0x80073000",  # CrmSQLNetworkingError
        "0x8004a001",  # CrmSqlGovernorDatabaseRequestDenied ("the server is busy")
    }
)
_EXPIRED_AUTH_CODES = frozenset({"0x80041d52", "0x8004a101"})  # ExpiredOAuthToken, ExpiredAuthTicket
_TOO_MANY_REQUESTS = 429
_URL_TOO_LONG = 414
_UNAUTHORIZED = 401
_SERVER_ERROR = 500
_MAX_RETRY_AFTER_S = 3600.0


class DataverseApiError(Exception):
    """A Dataverse answer other than success. ``endpoint`` is a route template, never a record URL."""

    def __init__(self, status: int, code: str, message: str, *, endpoint: str = "") -> None:
        super().__init__(f"Dataverse {endpoint or 'request'} answered {status} {code}: {message}".strip())
        self.status = status
        self.code = code
        self.message = message
        self.endpoint = endpoint


class RetriableError(DataverseApiError):
    """Worth retrying; ``retry_after`` (seconds) when the server said how long to wait."""

    def __init__(
        self, status: int, code: str, message: str, *, endpoint: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(status, code, message, endpoint=endpoint)
        self.retry_after = retry_after


class FatalError(DataverseApiError):
    """Retrying cannot help: configuration, credentials or privileges are wrong."""


class UnauthorizedError(FatalError):
    """401: the token was refused. The client renews it once; if that is refused too, it is fatal."""


class ExpiredDeltaTokenError(DataverseApiError):
    """The delta token expired or is invalid (``0x80044352``): the caller starts a fresh full pass."""


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (Dataverse sends integer seconds), capped at an hour; None if absent."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: Dataverse does not send one; the backoff policy decides instead
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def _error_fields(body: Any) -> tuple[str, str]:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            return str(error.get("code") or "").lower(), str(error.get("message") or "")
        if isinstance(error, str):  # Entra-style bodies ({"error": "invalid_client", ...})
            return error, str(body.get("error_description") or "")
    return "", ""


def classify(
    status: int, body: Any, headers: Mapping[str, str], *, endpoint: str = ""
) -> DataverseApiError | None:
    """The error an answer stands for, or None for success (2xx/3xx). ``body`` is the parsed JSON or None."""
    if status < 400:  # noqa: PLR2004 -- HTTP success/redirect range
        return None
    code, message = _error_fields(body)
    if status == _URL_TOO_LONG and not message:
        # Longer than the 32 KB a URL may hold (dataverse.md §2.1); the answer is HTML, not an OData error.
        message = "HTTP 414: the request URL is longer than the 32 KB Dataverse accepts"
    message = message or f"HTTP {status}"
    if code == EXPIRED_VERSION_STAMP:
        return ExpiredDeltaTokenError(status, code, message, endpoint=endpoint)
    if status == _TOO_MANY_REQUESTS or code in _TRANSIENT_CODES or status >= _SERVER_ERROR:
        return RetriableError(
            status, code, message, endpoint=endpoint, retry_after=retry_after_seconds(headers)
        )
    if status == _UNAUTHORIZED or code in _EXPIRED_AUTH_CODES:
        return UnauthorizedError(status, code, message, endpoint=endpoint)
    return FatalError(status, code, message, endpoint=endpoint)
