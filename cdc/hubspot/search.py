"""CRM search requests for paging by last-modified time, and where the next page starts: pure functions.

Why not ``after`` offsets: a query reaches at most 10,000 results (§3.5), and offsets shift when a record
in the already-read part is modified mid-pass (it moves to the end; the record behind it slides into the
read part and is skipped). So every page is a fresh query from the newest modification time seen so far
(``GTE``; records sharing that millisecond are read again, which downstream idempotency absorbs) and
``after`` is never sent. When a whole page shares one millisecond the lower bound cannot move; that
millisecond is then read on its own, keyed by ``hs_object_id`` (``EQ`` time, ``GT`` id, sorted by id), and
the pass goes on from the next millisecond. No query ever pages, so no query meets the window, however
many records changed, and nothing is skipped whatever order HubSpot gives records that tie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "LAST_MODIFIED",
    "MAX_BODY_CHARS",
    "MAX_PAGE",
    "SearchPosition",
    "next_position",
    "parse_ms",
    "search_body",
]

MAX_PAGE = 200
MAX_BODY_CHARS = 3000
LAST_MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
"""The property that moves on every write (§6); search sorts and filters on it."""


@dataclass(frozen=True)
class SearchPosition:
    """Where the next page starts: from ``since_ms`` on; in tie mode, ids after ``after_id`` there."""

    since_ms: int
    tie: bool = False
    after_id: int = -1


def parse_ms(value: str | None) -> int | None:
    """A HubSpot datetime value (ISO-8601 or ms epoch) as ms epoch; None when absent or unreadable."""
    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def search_body(
    last_modified: str, position: SearchPosition, properties: Sequence[str], limit: int
) -> dict[str, Any]:
    """The JSON body of one search request; ValueError when it breaks a documented limit."""
    if not 0 < limit <= MAX_PAGE:
        raise ValueError(f"search page size must be 1..{MAX_PAGE}, not {limit}")
    wanted = list(dict.fromkeys([*properties, last_modified, "hs_object_id"]))
    if position.tie:
        filters = [
            {"propertyName": last_modified, "operator": "EQ", "value": str(position.since_ms)},
            {"propertyName": "hs_object_id", "operator": "GT", "value": str(position.after_id)},
        ]
        sort = "hs_object_id"
    else:
        filters = [{"propertyName": last_modified, "operator": "GTE", "value": str(position.since_ms)}]
        sort = last_modified
    body = {
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
        "properties": wanted,
        "limit": limit,
    }
    size = len(orjson.dumps(body))
    if size > MAX_BODY_CHARS:
        raise ValueError(
            f"a search body may hold {MAX_BODY_CHARS} characters; {len(wanted)} properties make {size}: "
            "request fewer properties"
        )
    return body


def next_position(
    position: SearchPosition, page: Sequence[tuple[int, int]], has_more: bool
) -> SearchPosition | None:
    """Where to search next after a page of (modified ms, id) in the order received; None: pass done."""
    if not page or not has_more:
        if position.tie:  # the tied millisecond is exhausted: go on after it
            return SearchPosition(position.since_ms + 1)
        return None
    if position.tie:
        return SearchPosition(position.since_ms, tie=True, after_id=max(record_id for _, record_id in page))
    newest = max(modified for modified, _ in page)
    if newest > position.since_ms:
        return SearchPosition(newest)
    # A whole page at one millisecond: read that millisecond by id, from the start.
    return SearchPosition(position.since_ms, tie=True)
