"""Between JSON and rows: validate a write body against a table (columns, types, choices, ``@odata.bind``)
and render a row as the Web API shows it (``@odata.etag``, ``_x_value`` lookups, annotations on request).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.odata import FilterSyntaxError, Prefer, parse_key
from cdc.sandbox.dataverse.store import Row, Store
from cdc.sandbox.dataverse.tables import Column, Table

__all__ = [
    "FORMATTED",
    "Write",
    "parse_write",
    "read_view",
    "render_row",
    "resolve_reference",
    "usable_key",
    "validate_names",
]

FORMATTED = "OData.Community.Display.V1.FormattedValue"
_NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"
_LOGICAL = "Microsoft.Dynamics.CRM.lookuplogicalname"
_REFERENCE = re.compile(r"^(?:.*/api/data/v9\.\d/|/)?(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<key>.+)\)$")
_EDM = {"Integer": "Edm.Int32", "BigInt": "Edm.Int64", "Money": "Edm.Decimal", "Decimal": "Edm.Decimal"}
_EDM |= {"Double": "Edm.Double", "Boolean": "Edm.Boolean", "DateTime": "Edm.DateTimeOffset"}


class Write:
    """A validated write: column values, lookup targets, and the id the body named (if any)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.lookups: dict[str, str] = {}
        self.record_id: str | None = None


def _validation(message: str) -> errors.DataverseError:
    return errors.bad_request(f"A validation error occurred. {message}", code="0x80044331")


def _convert(  # noqa: C901, PLR0911, PLR0912 -- one branch per column type
    table: Table, column: Column, value: Any, entity_set: str
) -> Any:
    if value is None:
        return None
    mismatch = errors.payload_error(
        entity_set,
        f"Cannot convert the literal '{value}' to the expected type '{_EDM.get(column.kind, 'Edm.String')}'.",
    )
    kind = column.kind
    if kind in {"String", "Memo"}:
        if not isinstance(value, str):
            raise mismatch
        if column.max_length is not None and len(value) > column.max_length:
            raise _validation(
                f"The length of the '{column.name}' attribute of the '{table.logical_name}' entity "
                f"exceeded the maximum allowed length of '{column.max_length}'."
            )
        return value
    if kind in {"Integer", "BigInt", "Picklist", "State", "Status"}:
        if isinstance(value, bool) or not isinstance(value, int):
            raise mismatch
        if column.is_choice and column.choice(value) is None:
            accepted = ",".join(str(c.value) for c in column.choices)
            raise _validation(
                f"The value {value} of '{column.name}' on record of type '{table.logical_name}' "
                f"is outside the valid range. Accepted Values: {accepted}"
            )
        return value
    if kind in {"Money", "Decimal", "Double"}:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise mismatch
        return value
    if kind == "Boolean":
        if not isinstance(value, bool):
            raise mismatch
        return value
    if kind == "DateTime":
        if not isinstance(value, str):
            raise mismatch
        try:
            if column.date_only:
                return date.fromisoformat(value[:10]).isoformat()
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise mismatch from None
        moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise mismatch


def usable_key(store: Store, table: Table, names: set[str]) -> None:
    """A URL key naming these columns needs an alternate key on them whose index is Active. A key still
    Pending, InProgress or Failed gets the same answer as no key at all: the documentation names no other
    error, and says the key "will not be immediately available" while its system job builds the index
    (maker page define-alternate-keys-portal; Learn, define-alternate-keys-entity, "Monitor index creation
    for alternate keys"; fact sheet §2.4: upserts by a key work "after ... the key index is active").
    Microsoft's own upsert sample polls ``EntityKeyIndexStatus`` until Active before its first upsert
    (PowerApps-Samples, ProductUpsertSample ``WaitForEntityAndKeysToBeActive``). **[derived]**"""
    store.settle_keys(table)
    key = table.find_key(names)
    if key is None or not key.active:
        raise errors.invalid_key(table.logical_name)


def resolve_reference(store: Store, text: str) -> Row:
    """``/contacts(<guid>)``, a full URL, or ``accounts(accountnumber='A1')`` -> the row it names."""
    match = _REFERENCE.match(text.strip())
    target = store.table_by_set(match.group("set")) if match else None
    if match is None or target is None:
        raise errors.bad_request(f"Invalid entity reference '{text}'.", code="0x80060888")
    try:
        key = parse_key(match.group("key"))
    except FilterSyntaxError as exc:
        raise errors.invalid_key(target.logical_name) from exc
    if isinstance(key, str):
        row = store.get(target.logical_name, key)
    elif set(key) == {target.primary_id}:
        row = store.get(target.logical_name, str(key[target.primary_id]))
    else:
        usable_key(store, target, set(key))
        row = store.find_by_key(target, key)
    if row is None:
        raise errors.not_found(target.logical_name, match.group("key"))
    return row


def parse_write(  # noqa: C901 -- one branch per kind of body member
    store: Store, table: Table, body: Any
) -> Write:
    if not isinstance(body, dict):
        raise errors.payload_error(table.entity_set, "The request body must be a JSON object.")
    write = Write()
    navigation = table.navigation()
    for name, value in body.items():
        if name.endswith("@odata.bind"):
            nav = name.removesuffix("@odata.bind")
            if nav not in navigation:
                raise errors.payload_error(
                    table.entity_set,
                    f"An undeclared property '{nav}' which only has property annotations in the payload "
                    "but no property value was found in the payload.",
                )
            column, targets = navigation[nav]
            if value is None:
                write.values[column.name] = None
                continue
            row = resolve_reference(store, str(value))
            if row.table == "systemuser" and row.values.get("isdisabled"):
                raise errors.user_disabled(row.id)  # an owner must be an enabled user
            if row.table not in targets:
                raise errors.bad_request(
                    f"Invalid entity reference '{value}' for '{nav}'.", code="0x80060888"
                )
            write.values[column.name], write.lookups[column.name] = row.id, row.table
        elif "@" in name:
            continue  # @odata.type, @odata.etag and other instance annotations
        elif name == table.primary_id:
            if not isinstance(value, str):
                raise errors.payload_error(table.entity_set, f"Cannot convert '{value}' to 'Edm.Guid'.")
            write.record_id = value.lower()
        elif (field := table.columns.get(name)) is None or field.is_lookup:
            raise errors.payload_error(
                table.entity_set,
                f"The property '{name}' does not exist on type "
                f"'Microsoft.Dynamics.CRM.{table.logical_name}'. Make sure to only use property names "
                "that are defined by the type or mark the type as open type.",
            )
        elif field.writable:
            write.values[name] = _convert(table, field, value, table.entity_set)
    return write


def validate_names(table: Table, names: list[str] | None) -> None:
    known = table.by_read_name()
    for name in names or []:
        if name not in known:
            raise errors.query_error(
                f"Could not find a property named '{name}' on type "
                f"'Microsoft.Dynamics.CRM.{table.logical_name}'."
            )


def read_view(table: Table, row: Row) -> dict[str, Any]:
    """The row keyed by read names (``_x_value`` for lookups), for $filter and $orderby."""
    return {column.read_name: row.values.get(name) for name, column in table.columns.items()}


def _formatted(  # noqa: PLR0911 -- one answer per column type
    column: Column, value: Any, name_of: Callable[[str, str], str | None], target: str | None
) -> Any:
    if column.is_choice:
        choice = column.choice(int(value))
        return choice.label if choice else None
    if column.kind == "Boolean":
        labels = {c.value: c.label for c in column.choices}
        return labels.get(int(bool(value)), "Yes" if value else "No")
    if column.kind == "Money":
        return f"${value:,.2f}"
    if column.kind in {"Integer", "BigInt"}:
        return f"{value:,}"
    if column.kind == "DateTime":
        if column.date_only:
            day = date.fromisoformat(value)
            return f"{day.month}/{day.day}/{day.year}"
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return f"{moment.month}/{moment.day}/{moment.year} {moment:%I:%M %p}".replace(" 0", " ", 1)
    if column.is_lookup and target is not None:
        return name_of(target, value)
    return None


def render_row(
    store: Store, table: Table, row: Row, select: list[str] | None, prefer: Prefer
) -> dict[str, Any]:
    """``@odata.etag``, the selected columns (all without ``$select``) and always the primary key."""
    by_read = table.by_read_name()
    names = select if select is not None else list(by_read)
    if table.primary_id not in names:
        names = [*names, table.primary_id]
    out: dict[str, Any] = {"@odata.etag": row.etag}

    def name_of(target: str, record_id: str) -> str | None:
        other = store.get(target, record_id)
        target_table = store.tables[target]
        return None if other is None else other.values.get(target_table.primary_name)

    for read_name in names:
        column = by_read[read_name]
        value = row.values.get(column.name)
        if value is not None and column.kind not in {"String", "Memo", "Uniqueidentifier"}:
            target = row.lookup_tables.get(column.name)
            if prefer.wants(FORMATTED):
                out[f"{read_name}@{FORMATTED}"] = _formatted(column, value, name_of, target)
            if column.is_lookup and prefer.wants(_NAV):
                nav = f"{column.name}_{target}" if column.kind == "Customer" else column.name
                out[f"{read_name}@{_NAV}"] = nav
            if column.is_lookup and prefer.wants(_LOGICAL):
                out[f"{read_name}@{_LOGICAL}"] = target
        out[read_name] = value
    return out


def key_values(store: Store, table: Table, key: str | Mapping[str, Any]) -> tuple[Row | None, dict[str, Any]]:
    """Resolve a URL key to (row or None, the key's column values to copy into a created row)."""
    if isinstance(key, str):
        return store.get(table.logical_name, key), {table.primary_id: key}
    if set(key) == {table.primary_id}:
        record_id = str(key[table.primary_id]).lower()
        return store.get(table.logical_name, record_id), {table.primary_id: record_id}
    usable_key(store, table, set(key))
    values = dict(key)
    for name, value in values.items():
        if name in table.columns:
            values[name] = _convert(table, table.columns[name], value, table.entity_set)
    return store.find_by_key(table, values), values
