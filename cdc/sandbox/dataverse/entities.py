"""Writes and reads of single records: POST create, GET by key, PATCH update/upsert (by id or alternate
key), DELETE, with ``If-Match`` / ``If-None-Match`` (fact sheet §2.2-2.6, 2.9).
"""

from __future__ import annotations

from typing import Any

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.context import ApiRequest, Outcome, json_outcome
from cdc.sandbox.dataverse.odata import FilterSyntaxError, parse_key, parse_select
from cdc.sandbox.dataverse.records import key_values, parse_write, render_row, validate_names
from cdc.sandbox.dataverse.store import Row, Store
from cdc.sandbox.dataverse.tables import Table

__all__ = ["create", "delete", "entity_id_url", "locate", "read", "single_column", "upsert", "write_row"]


def entity_id_url(request: ApiRequest, table: Table, record_id: str) -> str:
    return f"{request.api}/{table.entity_set}({record_id})"


def _representation(store: Store, table: Table, request: ApiRequest, row: Row, status: int) -> Outcome:
    select = parse_select(request.query.get("$select"))
    validate_names(table, select)
    payload: dict[str, Any] = {"@odata.context": f"{request.api}/$metadata#{table.entity_set}/$entity"}
    payload.update(render_row(store, table, row, select, request.prefer))
    return json_outcome(status, payload, {"Preference-Applied": "return=representation"})


def _written(store: Store, table: Table, request: ApiRequest, row: Row, status: int) -> Outcome:
    url = entity_id_url(request, table, row.id)
    if request.prefer.return_representation:
        outcome = _representation(store, table, request, row, status)
        outcome.entity_url = url
        return outcome
    return Outcome(204, {"OData-Version": "4.0", "OData-EntityId": url}, entity_url=url)


def write_row(store: Store, table: Table, body: Any, existing: Row | None, key: dict[str, Any]) -> Row:
    """Create (``existing`` None; ``key`` values copied in) or update one row, checking alternate keys."""
    write = parse_write(store, table, body)
    if existing is None:
        record_id = key.get(table.primary_id) or write.record_id
        if record_id is not None and store.get(table.logical_name, str(record_id)) is not None:
            raise errors.DataverseError(412, "0x80040237", "Cannot insert duplicate key.")
        values = {**write.values, **{k: v for k, v in key.items() if k != table.primary_id}}
        if (conflict := store.key_conflict(table, values, None)) is not None:
            raise errors.duplicate_key(conflict.name, conflict.columns)
        return store.create(table, values, write.lookups, str(record_id) if record_id else None)
    merged = {**existing.values, **write.values}
    if (conflict := store.key_conflict(table, merged, existing.id)) is not None:
        raise errors.duplicate_key(conflict.name, conflict.columns)
    return store.update(table, existing, write.values, write.lookups)


def create(store: Store, table: Table, request: ApiRequest) -> Outcome:
    with store.transaction():
        row = write_row(store, table, request.json(), None, {})
    return _written(store, table, request, row, 201)


def locate(store: Store, table: Table, key_text: str) -> tuple[Row | None, dict[str, Any]]:
    try:
        key = parse_key(key_text)
    except FilterSyntaxError as exc:
        raise errors.invalid_key(table.logical_name) from exc
    return key_values(store, table, key)


def _check_match(table: Table, row: Row | None, if_match: str | None, key_text: str) -> None:
    if if_match is None:
        return
    if row is None:
        raise errors.not_found(table.logical_name, key_text)
    if if_match.strip() != "*" and row.etag not in {tag.strip() for tag in if_match.split(",")}:
        raise errors.etag_mismatch()


def read(store: Store, table: Table, request: ApiRequest, key_text: str) -> Outcome:
    with store.lock:
        row, _ = locate(store, table, key_text)
        if row is None:
            raise errors.not_found(table.logical_name, key_text)
        none_match = request.headers.get("if-none-match")
        if none_match and row.etag == none_match.strip() and not request.prefer.annotations:
            return Outcome(304, {"OData-Version": "4.0"})
        return _representation(store, table, request, row, 200)


def upsert(store: Store, table: Table, request: ApiRequest, key_text: str) -> Outcome:
    """PATCH: update, or create with the key's values.

    ``If-Match: *`` forbids the create, ``If-None-Match: *`` demands it.
    """
    with store.transaction():
        row, key = locate(store, table, key_text)
        _check_match(table, row, request.headers.get("if-match"), key_text)
        if request.headers.get("if-none-match", "").strip() == "*" and row is not None:
            raise errors.record_exists()
        created = row is None
        row = write_row(store, table, request.json(), row, key)
    return _written(store, table, request, row, 201 if created else 200)


def delete(store: Store, table: Table, request: ApiRequest, key_text: str) -> Outcome:
    with store.transaction():
        row, _ = locate(store, table, key_text)
        if row is None:
            raise errors.not_found(table.logical_name, key_text)
        _check_match(table, row, request.headers.get("if-match"), key_text)
        store.delete(table, row)
    return Outcome(204, {"OData-Version": "4.0"})


def single_column(store: Store, table: Table, request: ApiRequest, key_text: str, name: str) -> Outcome:
    """``GET|PUT|DELETE <set>(<key>)/<column>``: read, set (``{"value": x}``) or clear one column."""
    with store.transaction():
        row, _ = locate(store, table, key_text)
        if row is None:
            raise errors.not_found(table.logical_name, key_text)
        column = table.by_read_name().get(name)
        if column is None:
            raise errors.DataverseError(404, "0x8006088a", f"Resource not found for the segment '{name}'.")
        if request.method == "GET":
            context = f"{request.api}/$metadata#{table.entity_set}({row.id})/{name}"
            return json_outcome(200, {"@odata.context": context, "value": row.values.get(column.name)})
        _check_match(table, row, request.headers.get("if-match"), key_text)
        value = None
        if request.method == "PUT":
            body = request.json()
            if not isinstance(body, dict) or "value" not in body:
                raise errors.payload_error(table.entity_set, 'The request body must be {"value": ...}.')
            value = body["value"]
        write_row(store, table, {name: value}, row, {})
    return Outcome(204, {"OData-Version": "4.0"})
