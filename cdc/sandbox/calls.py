"""API call accounting per endpoint, for tests and benchmarks ("API calls per synced change").

Each call is also counted by *kind* (`call_kind`), what it does for the sync, so a benchmark can say where
the calls per record go: ``read`` (records by id), ``lookup`` (records by a match value: first-sync
matching), ``association`` (association reads), ``write`` (creates, updates, deletes, association writes),
``poll`` (the change feeds: Dataverse's delta, HubSpot's journal and last-modified searches) and ``other``
(metadata, owners, tokens).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

import orjson

__all__ = ["KINDS", "CallCounter", "call_kind", "needs_body"]

KINDS = ("read", "lookup", "association", "write", "poll", "other")
_POLL_PROPERTIES = frozenset({"lastmodifieddate", "hs_lastmodifieddate"})
_BY_ID = re.compile(r"^\(?\s*(\w+)id eq [0-9a-fA-F-]{36}\b")
"""A Dataverse ``$filter`` reading rows by their primary key (``contactid eq <guid> or ...``)."""


def needs_body(endpoint: str) -> bool:
    """Does `call_kind` need the request's body to tell this call's kind (HubSpot reads and searches)?"""
    return endpoint.startswith("POST ") and endpoint.endswith(("/batch/read", "/search"))


def call_kind(endpoint: str, query: str, body: bytes | None = None, *, prefer: str = "") -> str:  # noqa: PLR0911 -- one answer per kind, in order of precedence
    """What a call does for the sync, from its endpoint (``"<METHOD> <route template>"``), query string,
    ``Prefer`` header and, where `needs_body`, its JSON body."""
    method, _, path = endpoint.partition(" ")
    lowered = path.lower()
    if "/associations/" in lowered:
        return "association" if lowered.endswith("/batch/read") or method == "GET" else "write"
    if "token" in lowered or "/owners" in lowered or "/properties" in lowered or "/schemas" in lowered:
        return "other"
    if "/journal" in lowered or "webhooks" in lowered:
        return "poll"
    if lowered.endswith("/search"):
        return "poll" if _searches_by_time(body) else "lookup"
    if lowered.endswith("/batch/read"):
        return "lookup" if _parsed(body).get("idProperty") else "read"
    if lowered.startswith("/api/data/"):
        return _dataverse_kind(method, lowered, query, prefer)
    if lowered.startswith("/crm/"):
        if method == "GET":
            return "poll" if lowered.endswith("}") and "{objectid}" not in lowered else "read"
        return "write"
    return "other"


def _dataverse_kind(method: str, path: str, query: str, prefer: str) -> str:
    if path.endswith("$batch") or method != "GET":
        return "write"  # the gateway reads with GETs; a $batch carries its writes
    if "entitydefinitions" in path or "systemusers" in path or "whoami" in path:
        return "other"
    if "odata.track-changes" in prefer or "deltatoken" in query.lower():
        return "poll"
    where = _query_filter(query)
    if where is None:
        return "read"
    return "read" if _BY_ID.match(where) else "lookup"


def _query_filter(query: str) -> str | None:
    values = parse_qs(query).get("$filter")
    return values[0] if values else None


def _parsed(body: bytes | None) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _searches_by_time(body: bytes | None) -> bool:
    """A search filtering on the last-modified time: a poller's pass, not a match lookup."""
    for group in _parsed(body).get("filterGroups") or []:
        for condition in (group or {}).get("filters") or []:
            if isinstance(condition, dict) and condition.get("propertyName") in _POLL_PROPERTIES:
                return True
    return False


class CallCounter:
    """Counts calls by ``"<METHOD> <route template>"``, by kind (`call_kind`) and answers by status."""

    def __init__(self) -> None:
        self._calls: Counter[str] = Counter()
        self._kinds: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, endpoint: str, status: int, kind: str = "other") -> None:
        with self._lock:
            self._calls[endpoint] += 1
            self._kinds[kind] += 1
            self._statuses[str(status)] += 1

    def count(self, endpoint: str | None = None) -> int:
        with self._lock:
            return self._calls[endpoint] if endpoint else sum(self._calls.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._calls.values()),
                "by_endpoint": dict(sorted(self._calls.items())),
                "by_kind": {kind: self._kinds[kind] for kind in KINDS},
                "by_status": dict(sorted(self._statuses.items())),
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._kinds.clear()
            self._statuses.clear()
