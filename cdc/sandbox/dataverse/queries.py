"""Reading a collection: plain queries ($select, $filter, $orderby, $top, maxpagesize paging) and
change-tracking reads (initial, delta, their pages), fact sheet §1.2-1.5 and the paging rules.

Plain pages use a paging cookie with the page's offset; tracking pages carry a
:class:`~cdc.sandbox.dataverse.changetracking.Cursor`. Page size: ``odata.maxpagesize``, capped at 5,000.
"""

from __future__ import annotations

import re
from typing import Any

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.changetracking import Cursor, delta_page, make_token, read_token
from cdc.sandbox.dataverse.context import ApiRequest, Outcome, json_outcome, link
from cdc.sandbox.dataverse.odata import (
    Compare,
    Expr,
    FilterSyntaxError,
    Or,
    evaluate,
    names_in,
    parse_filter,
    parse_orderby,
    parse_select,
    sort_key,
)
from cdc.sandbox.dataverse.records import read_view, render_row, validate_names
from cdc.sandbox.dataverse.store import Deleted, Store
from cdc.sandbox.dataverse.tables import Table

__all__ = ["MAX_PAGE_SIZE", "read_collection"]

MAX_PAGE_SIZE = 5000
_PLAIN_COOKIE = re.compile(r'pagenumber="(\d+)" pagingcookie="(\d+)" istracking="False"')
_NOT_WITH_TRACKING = ("filter", "orderby", "expand", "top", "skip", "apply")


def _context(request: ApiRequest, table: Table, select: list[str] | None, suffix: str = "") -> str:
    columns = f"({','.join(select)})" if select else ""
    return f"{request.api}/$metadata#{table.entity_set}{columns}{suffix}"


def read_collection(store: Store, table: Table, request: ApiRequest, expire_days: float) -> Outcome:
    query, prefer = request.query, request.prefer
    select = parse_select(query.get("$select"))
    validate_names(table, select)
    size = min(prefer.max_page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    skiptoken = query.get("$skiptoken")
    cursor = Cursor.from_cookie(skiptoken) if skiptoken else None
    tracking = prefer.track_changes or "$deltatoken" in query or cursor is not None
    if tracking and not table.change_tracking:
        # A table without change tracking answers a tracking request as an ordinary query: rows and
        # nextLinks, no `Preference-Applied: odata.track-changes`, and never a deltaLink (fact sheet §1.1,
        # drasi-core README "No delta link returned from initial change tracking request").
        return _plain(store, table, request, select, size)
    if tracking:
        for option in _NOT_WITH_TRACKING:
            if f"${option}" in query:
                raise errors.tracking_option_not_supported(option)
        return _tracking(store, table, request, select, size, cursor, expire_days)
    return _plain(store, table, request, select, size)


def _plain(store: Store, table: Table, request: ApiRequest, select: list[str] | None, size: int) -> Outcome:
    query, prefer = request.query, request.prefer
    try:
        expression = parse_filter(query["$filter"]) if query.get("$filter") else None
        order = parse_orderby(query.get("$orderby"))
    except FilterSyntaxError as exc:
        raise errors.query_error(str(exc)) from exc
    validate_names(table, [*(names_in(expression) if expression else []), *(name for name, _ in order)])
    with store.lock:
        rows = store.rows(table.logical_name)
        if expression is not None and (equal := _equal_to(expression)) is not None:
            # `col eq 'a' or col eq 'b' ...` (the daemon's reads and finds): only rows holding one of the
            # values can match, so the full evaluation below runs on those alone, not on the whole table.
            column, wanted = table.by_read_name()[equal[0]].name, equal[1]
            rows = [r for r in rows if isinstance(v := r.values.get(column), str) and v.casefold() in wanted]
        views = [(row, read_view(table, row)) for row in rows]
        if expression is not None:
            views = [(row, view) for row, view in views if evaluate(expression, view)]
        views.sort(key=lambda item: item[0].id)
        for name, descending in reversed(order):
            views.sort(key=lambda item, n=name: sort_key(item[1].get(n)), reverse=descending)  # type: ignore[misc]
        offset, page = 0, 1
        if (token := query.get("$skiptoken")) and (match := _PLAIN_COOKIE.search(token)):
            page, offset = int(match.group(1)), int(match.group(2))
        if prefer.max_page_size is None and query.get("$top"):
            if not query["$top"].isdigit():
                raise errors.query_error(f"Invalid value '{query['$top']}' for $top query option.")
            size = min(int(query["$top"]), MAX_PAGE_SIZE)
            views = views[:size]
        chosen = views[offset : offset + size]
        payload: dict[str, Any] = {
            "@odata.context": _context(request, table, select),
            "value": [render_row(store, table, row, select, prefer) for row, _ in chosen],
        }
    if offset + size < len(views):
        params = {k: v for k, v in query.items() if k != "$skiptoken"}
        cookie = f'<cookie pagenumber="{page + 1}" pagingcookie="{offset + size}" istracking="False" />'
        payload["@odata.nextLink"] = link(request.api, table.entity_set, {**params, "$skiptoken": cookie})
    applied = f"odata.maxpagesize={size}" if prefer.max_page_size else None
    return json_outcome(200, payload, {"Preference-Applied": applied} if applied else None)


def _equal_to(expr: Expr) -> tuple[str, set[str]] | None:
    """``(name, casefolded texts)`` when ``expr`` is ``name eq 'x'``, or an ``or`` of such on one name."""
    if isinstance(expr, Compare) and expr.op == "eq" and isinstance(expr.value, str):
        return expr.name, {expr.value.casefold()}
    if isinstance(expr, Or):
        left, right = _equal_to(expr.left), _equal_to(expr.right)
        if left is not None and right is not None and left[0] == right[0]:
            return left[0], left[1] | right[1]
    return None


def _tracking(  # noqa: PLR0917 -- private helper of read_collection, which has every argument at hand
    store: Store,
    table: Table,
    request: ApiRequest,
    select: list[str] | None,
    size: int,
    cursor: Cursor | None,
    expire_days: float,
) -> Outcome:
    query, prefer = request.query, request.prefer
    now = store.clock.now()
    with store.lock:
        if cursor is None and "$deltatoken" in query:
            cursor = Cursor(read_token(query["$deltatoken"], now, expire_days), store.version, "r", 0)
        elif cursor is None:
            cursor = Cursor(0, store.version, "i", 0)
        is_delta = cursor.phase != "i"
        items, following = delta_page(store, table.logical_name, cursor, size)
        value: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, Deleted):
                value.append(
                    {
                        "@odata.context": f"{request.api}/$metadata#{table.entity_set}/$deletedEntity",
                        "id": item.id,
                        "reason": "deleted",
                    }
                )
            else:
                value.append(render_row(store, table, item, select, prefer))
    params = {"$select": query["$select"]} if query.get("$select") else {}
    payload: dict[str, Any] = {
        "@odata.context": _context(request, table, select, "/$delta" if is_delta else ""),
    }
    if following is not None:
        payload["@odata.nextLink"] = link(
            request.api, table.entity_set, {**params, "$skiptoken": following.cookie()}
        )
    else:
        token = make_token(cursor.upto, now)
        payload["@odata.deltaLink"] = link(request.api, table.entity_set, {**params, "$deltatoken": token})
    payload["value"] = value
    applied = ["odata.track-changes"] if prefer.track_changes else []
    if prefer.max_page_size:
        applied.append(f"odata.maxpagesize={size}")
    return json_outcome(200, payload, {"Preference-Applied": ",".join(applied)} if applied else None)
