"""What one Web API operation sees: the request in a transport-neutral form and the answer it gives.

Both the HTTP routes and the parts of a ``$batch`` are turned into an :class:`ApiRequest`, so a part
behaves exactly like the same request sent alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.odata import Prefer, parse_prefer

__all__ = ["API_PREFIX", "ApiRequest", "Outcome", "json_outcome", "link"]

API_PREFIX = "/api/data/v9.2"


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # below the API prefix, percent-decoded: "contacts(<guid>)"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    org: str  # "https://127.0.0.1:8443"
    prefer_headers: tuple[str, ...] = ()

    @property
    def prefer(self) -> Prefer:
        return parse_prefer(list(self.prefer_headers))

    @property
    def api(self) -> str:
        return self.org + API_PREFIX

    def json(self) -> Any:
        try:
            return orjson.loads(self.body or b"{}")
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"Invalid JSON payload: {exc}", code="0x80048d19") from exc


@dataclass
class Outcome:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    entity_url: str | None = None  # the written record, for ``$n`` references inside a change set


def json_outcome(status: int, payload: Any, headers: dict[str, str] | None = None) -> Outcome:
    return Outcome(
        status,
        {
            "Content-Type": "application/json; odata.metadata=minimal",
            "OData-Version": "4.0",
            **(headers or {}),
        },
        orjson.dumps(payload),
    )


def link(api: str, path: str, params: dict[str, str]) -> str:
    """A next or delta link: the same path with the given query options, percent-encoded."""
    if not params:
        return f"{api}/{path}"
    return f"{api}/{path}?{urlencode(params, quote_via=quote, safe='$,()')}"
