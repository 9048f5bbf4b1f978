"""Checks the signatures HubSpot puts on the requests it sends us (webhooks), as its documentation says.

Three versions exist (developers.hubspot.com, "Validating requests"; fact sheet §2):

1. v1: lowercase hex SHA-256 (a plain hash, not an HMAC) of ``client_secret + body``.
2. v2: lowercase hex SHA-256 of ``client_secret + method + uri + body``.
3. v3: standard base64 of HMAC-SHA256 keyed with the client secret over ``method + uri + body + timestamp``,
   where the URI has a fixed list of escapes decoded first and the timestamp (ms epoch, taken verbatim
   from ``X-HubSpot-Request-Timestamp``) must be at most 5 minutes old.

Every source string is UTF-8 encoded; the body is the raw bytes as received (re-serialising JSON breaks
signatures on non-ASCII text). Comparison is constant-time. This module is written from the docs on its
own, apart from the sandbox's signer, so a shared mistake cannot make both sides agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

__all__ = ["MAX_AGE_MS", "is_valid", "v3_uri"]

MAX_AGE_MS = 5 * 60 * 1000
# The escapes HubSpot decodes before computing v3 (docs' list); any other escape stays as sent.
_V3_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def v3_uri(uri: str) -> str:
    """The URI as it enters the v3 source string (listed escapes decoded, case-insensitively)."""
    return _ESCAPE.sub(lambda match: _V3_DECODED.get(match.group(0).upper(), match.group(0)), uri)


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _timestamp_fresh(timestamp: str | int | None, now: float | None) -> bool:
    if timestamp is None:
        return False
    try:
        stamp_ms = int(timestamp)
    except ValueError:
        return False
    now_ms = (time.time() if now is None else now) * 1000
    return now_ms - stamp_ms <= MAX_AGE_MS


def is_valid(  # noqa: PLR0917 -- the signature issue 4 fixes, mirroring the SDKs' keyword order
    signature: str | None,
    client_secret: str,
    request_body: str | bytes,
    http_uri: str | None = None,
    http_method: str = "POST",
    signature_version: str = "v1",
    timestamp: str | int | None = None,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is what HubSpot would send for this request.

    ``now`` is seconds since the epoch (defaults to the wall clock); it only matters for v3. v2 and v3
    need ``http_uri``: the full URL HubSpot called (scheme, host, path, query in its original order).
    An unknown version, a missing URI or a malformed timestamp is simply invalid.
    """
    if not signature:
        return False
    body = _as_bytes(request_body)
    secret = client_secret.encode("utf-8")
    version = signature_version.lower()
    if version == "v1":
        expected = hashlib.sha256(secret + body).hexdigest()
    elif version == "v2":
        if http_uri is None:
            return False
        source = secret + http_method.encode("utf-8") + http_uri.encode("utf-8") + body
        expected = hashlib.sha256(source).hexdigest()
    elif version == "v3":
        if http_uri is None or not _timestamp_fresh(timestamp, now):
            return False
        source = (
            http_method.encode("utf-8") + v3_uri(http_uri).encode("utf-8") + body + str(timestamp).encode()
        )
        expected = base64.b64encode(hmac.new(secret, source, hashlib.sha256).digest()).decode("ascii")
    else:
        return False
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8"))
