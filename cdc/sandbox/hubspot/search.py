"""CRM search: request validation and filter/sort/paging evaluation, as pure functions (no store, no I/O).

Rules (fact sheet §3.5): filters in a group are ANDed, groups are ORed; at most 5 groups, 6 filters per
group and 18 in all; one sort; ``limit`` defaults to 10 and is at most 200; ``after`` is an offset and no
query reaches past 10,000 results. String equality (``EQ``, ``NEQ``) is case-insensitive, but ``IN`` and
``NOT_IN`` on a string property compare the stored value, lowercased, with the values exactly as sent:
"the searched values must be lowercase" (D-SRCH, the search guide on ``IN``), so ``["Acme"]`` finds
nothing. Numbers compare as numbers; ``datetime``/``date`` values compare as ms epoch whether given as ms
or ISO-8601.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cdc.sandbox.hubspot import errors

__all__ = ["MAX_WINDOW", "Filter", "Page", "SearchRequest", "parse_request", "run"]

MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
DEFAULT_LIMIT, MAX_LIMIT, MAX_WINDOW = 10, 200, 10_000
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
_TOKEN = re.compile(r"[^\w@.*-]+")


@dataclass(frozen=True)
class Filter:
    property_name: str
    operator: str
    value: str | None = None
    high_value: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchRequest:
    groups: tuple[tuple[Filter, ...], ...]
    sort_property: str | None
    descending: bool
    properties: tuple[str, ...] | None
    limit: int
    after: int
    query: str | None


@dataclass(frozen=True)
class Page:
    total: int
    ids: list[str]
    next_after: str | None


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse_filter(raw: Any) -> Filter:
    if not isinstance(raw, dict) or not isinstance(raw.get("propertyName"), str):
        raise errors.bad_request("Each filter needs a propertyName and an operator")
    operator = str(raw.get("operator", "EQ")).upper()
    if operator not in OPERATORS:
        raise errors.bad_request(f"Unknown filter operator: {operator}")
    values = raw.get("values") or []
    if not isinstance(values, list):
        raise errors.bad_request("Filter values must be a list")
    value = raw.get("value")
    high = raw.get("highValue")
    if operator in {"IN", "NOT_IN"} and not values:
        raise errors.bad_request(f"{operator} needs a non-empty values list")
    if operator == "BETWEEN" and (value is None or high is None):
        raise errors.bad_request("BETWEEN needs value and highValue")
    needs_value = operator not in {"IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"}
    if needs_value and value is None:
        raise errors.bad_request(f"{operator} needs a value")
    return Filter(
        raw["propertyName"],
        operator,
        None if value is None else _text(value),
        None if high is None else _text(high),
        tuple(_text(v) for v in values),
    )


def _parse_sort(sorts: Any) -> tuple[str | None, bool]:
    if not sorts:
        return None, False
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise errors.bad_request("At most one sort is allowed")
    sort = sorts[0]
    if isinstance(sort, str):  # the docs also accept a bare property name
        return sort, False
    if isinstance(sort, dict) and isinstance(sort.get("propertyName"), str):
        return sort["propertyName"], str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
    raise errors.bad_request("A sort needs a propertyName")


def parse_request(body: Mapping[str, Any]) -> SearchRequest:
    """The request, or a 400 in HubSpot's error shape naming the broken limit."""
    raw_groups = body.get("filterGroups") or []
    if not isinstance(raw_groups, list) or len(raw_groups) > MAX_GROUPS:
        raise errors.bad_request(f"At most {MAX_GROUPS} filterGroups are allowed")
    groups = []
    for raw in raw_groups:
        filters = raw.get("filters") if isinstance(raw, dict) else None
        if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
            raise errors.bad_request(
                f"Each filterGroup takes a list of at most {MAX_FILTERS_PER_GROUP} filters"
            )
        groups.append(tuple(_parse_filter(f) for f in filters))
    if sum(len(g) for g in groups) > MAX_FILTERS:
        raise errors.bad_request(f"At most {MAX_FILTERS} filters are allowed in all")
    sort_property, descending = _parse_sort(body.get("sorts"))
    limit, after = body.get("limit", DEFAULT_LIMIT), body.get("after", 0)
    try:
        limit, after = int(limit if limit is not None else DEFAULT_LIMIT), int(after or 0)
    except (TypeError, ValueError):
        raise errors.bad_request("limit and after must be integers") from None
    if not 0 < limit <= MAX_LIMIT:
        raise errors.bad_request(f"limit must be between 1 and {MAX_LIMIT}")
    if after < 0 or after >= MAX_WINDOW:
        raise errors.search_window_exceeded()
    properties = body.get("properties")
    query = body.get("query")
    return SearchRequest(
        tuple(groups),
        sort_property,
        descending,
        tuple(str(p) for p in properties) if isinstance(properties, list) else None,
        limit,
        after,
        str(query) if query else None,
    )


def _ms(value: str) -> float | None:
    if value.lstrip("-").replace(".", "", 1).isdigit():
        return float(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000


@functools.lru_cache(maxsize=1 << 16)
def _key(kind: str, value: str) -> Any:
    """Comparable form of a value by property type; None when it does not fit the type (cached: every
    search compares every record's value, and those repeat from one search to the next)."""
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return None
    if kind in {"datetime", "date"}:
        return _ms(value)
    return value.lower()


def _compare(kind: str, actual: str, wanted: str, operator: str) -> bool:
    left, right = _key(kind, actual), _key(kind, wanted)
    if left is None or right is None:
        return False
    result: bool = {
        "EQ": left == right,
        "NEQ": left != right,
        "LT": left < right,
        "LTE": left <= right,
        "GT": left > right,
        "GTE": left >= right,
    }[operator]
    return result


def _listed(kind: str, actual: str, values: Sequence[str]) -> bool:
    """``IN`` membership: a string property's value, lowercased, against the values as sent (D-SRCH)."""
    if kind == "string":
        return actual.lower() in values
    return any(_compare(kind, actual, v, "EQ") for v in values)


def _contains_token(actual: str, pattern: str) -> bool:
    pattern = pattern.lower()
    tokens = [t for t in _TOKEN.split(actual.lower()) if t]
    return fnmatch.fnmatchcase(actual.lower(), pattern) or any(
        fnmatch.fnmatchcase(t, pattern) for t in tokens
    )


def matches(properties: Mapping[str, str], types: Mapping[str, str], flt: Filter) -> bool:  # noqa: PLR0911 -- one return per operator family reads best
    actual = properties.get(flt.property_name)
    kind = types.get(flt.property_name, "string")
    if flt.operator == "HAS_PROPERTY":
        return actual is not None
    if flt.operator == "NOT_HAS_PROPERTY":
        return actual is None
    if flt.operator == "NEQ":
        return actual is None or not _compare(kind, actual, flt.value or "", "EQ")
    if flt.operator == "NOT_IN":
        return actual is None or not _listed(kind, actual, flt.values)
    if flt.operator == "NOT_CONTAINS_TOKEN":
        return actual is None or not _contains_token(actual, flt.value or "")
    if actual is None:
        return False
    if flt.operator == "IN":
        return _listed(kind, actual, flt.values)
    if flt.operator == "BETWEEN":
        return _compare(kind, actual, flt.value or "", "GTE") and _compare(
            kind, actual, flt.high_value or "", "LTE"
        )
    if flt.operator == "CONTAINS_TOKEN":
        return _contains_token(actual, flt.value or "")
    return _compare(kind, actual, flt.value or "", flt.operator)


def _query_matches(properties: Mapping[str, str], searched: Sequence[str], query: str) -> bool:
    words = [w for w in _TOKEN.split(query.lower()) if w]
    tokens = [t for name in searched for t in _TOKEN.split(properties.get(name, "").lower()) if t]
    return all(any(t.startswith(w) for t in tokens) for w in words)


def run(
    rows: Sequence[tuple[str, Mapping[str, str]]],
    request: SearchRequest,
    types: Mapping[str, str],
    searched: Sequence[str] = (),
) -> Page:
    """Matching ids for one page: ``rows`` are (id, properties) of the live records."""
    hits = [
        (record_id, props)
        for record_id, props in rows
        if (not request.groups or any(all(matches(props, types, f) for f in g) for g in request.groups))
        and (request.query is None or _query_matches(props, searched, request.query))
    ]
    hits.sort(key=lambda hit: int(hit[0]) if hit[0].isdigit() else 0)
    if request.sort_property:
        name, kind = request.sort_property, types.get(request.sort_property, "string")
        present: list[tuple[str, Mapping[str, str]]] = []
        missing: list[tuple[str, Mapping[str, str]]] = []
        for hit in hits:
            value = hit[1].get(name)
            (present if value is not None and _key(kind, value) is not None else missing).append(hit)
        present.sort(key=lambda h: _key(kind, h[1][name]), reverse=request.descending)
        hits = present + missing
    window = hits[:MAX_WINDOW]
    page = window[request.after : request.after + request.limit]
    end = request.after + request.limit
    return Page(len(hits), [h[0] for h in page], str(end) if end < len(window) else None)
