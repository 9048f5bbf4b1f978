"""Change-tracking rows -> change events: pure functions, no I/O, no clock (``received_at`` is passed in).

A delta page holds two kinds of entries (fact sheet §1.3): full rows (created or updated: the feed does
not tell which, so :attr:`Operation.UPSERT` with the whole row) and ``$deletedEntity`` entries
(``{"@odata.context": ".../$deletedEntity", "id": ..., "reason": "deleted"}``) that become
:attr:`Operation.DELETE`. Annotations (``@odata.etag``, ``...@OData.Community...``) are not columns and are
left out of the record; the etag's counter is the row version when ``versionnumber`` was not selected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from streams.codec import Scalar
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import SourceSystem

__all__ = ["RowError", "is_deleted_entry", "row_to_event"]

_ETAG = re.compile(r'^W/"(\d+)"$')
_INT64 = 2**63


class RowError(ValueError):
    """An entry that is neither a row with its key nor a deleted entity (the page is not what it seems)."""


def is_deleted_entry(entry: Mapping[str, Any]) -> bool:
    context = entry.get("@odata.context")
    return (isinstance(context, str) and context.endswith("$deletedEntity")) or (
        "reason" in entry and set(entry) <= {"@odata.context", "id", "reason"}
    )


def _scalar(value: Any) -> Scalar:
    """A column value as an event scalar; nested JSON (never sent with change tracking) is kept as text."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits somewhere inside: the stdlib encoder has no limit
        return json.dumps(value, default=str, separators=(",", ":"))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _version(entry: Mapping[str, Any]) -> str | None:
    version = entry.get("versionnumber")
    if isinstance(version, int) and not isinstance(version, bool):
        return str(version)
    etag = entry.get("@odata.etag")
    if isinstance(etag, str) and (match := _ETAG.match(etag)):
        return match.group(1)
    return None


def row_to_event(
    entry: Mapping[str, Any],
    *,
    tenant: str,
    object_type: str,
    received_at: datetime,
) -> ChangeEvent:
    """One delta entry as one change event keyed ``dataverse/<tenant>/<object_type>/<id>``."""
    if is_deleted_entry(entry):
        record_id = entry.get("id")
        if not isinstance(record_id, str) or not record_id:
            raise RowError(f"{object_type}: deleted entry without an id")
        return ChangeEvent(
            source=SourceSystem.DATAVERSE,
            tenant=tenant,
            object_type=object_type,
            object_id=record_id.lower(),
            operation=Operation.DELETE,
            origin=Origin.CHANGE_TRACKING,
            source_event_type=str(entry.get("reason") or "deleted"),
            occurred_at=received_at,  # the feed carries no deletion time
            received_at=received_at,
        )
    key_column = f"{object_type}id"
    record_id = entry.get(key_column)
    if not isinstance(record_id, str) or not record_id:
        raise RowError(f"{object_type}: row without its key column {key_column}")
    record = {name: _scalar(value) for name, value in entry.items() if "@" not in name}
    return ChangeEvent(
        source=SourceSystem.DATAVERSE,
        tenant=tenant,
        object_type=object_type,
        object_id=record_id.lower(),
        operation=Operation.UPSERT,
        origin=Origin.CHANGE_TRACKING,
        record=record,
        source_event_type="new_or_updated",
        source_version=_version(entry),
        occurred_at=_parse_time(entry.get("modifiedon")) or received_at,
        received_at=received_at,
    )
