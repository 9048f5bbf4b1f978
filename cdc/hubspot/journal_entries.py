"""Webhooks Journal entry files -> change events: parsing and translation, no I/O.

An entry file is ``{offset, publishedAt, journalEvents[]}``, each event ``{type, portalId, objectTypeId,
objectId, action, occurredAt, propertyChanges?}``, association events with ``associatedObjectTypeId``,
``associatedObjectId`` and an association type (fact sheet hubspot_2026.md §5: second-hand, from community
code; the spec gives the reads' shapes, not the file's). Read generously where the shape is unverified:
``occurredAt`` as ISO-8601 or epoch milliseconds, the association type as ``associationTypeId`` or a numeric
``associationType``, merge fields by the webhook's names (``primaryObjectId``, ``mergedObjectIds``,
``newObjectId``).

The events are the ones the webhook receiver publishes for the same change (`cdc.hubspot.events`), so the
sync has one path for both and the router recognises a change that came both ways by its identity
(`streams.events.ChangeEvent.identity`, `consumers.seen`): a CREATE is a ``create`` with no values (the
webhook's ``creation``), an UPDATE one ``update`` per changed property (the webhooks' one
``propertyChange`` per property), a DELETE / RESTORE / MERGE / GDPR_DELETE / association change as the
webhook's. The event id is ``<offset>#<index>``: where in the journal it was read.

An event that cannot be read (no object id, an unknown object type, another portal's) is never dropped
silently: another portal's is counted apart, an unreadable one is published as ``Operation.OTHER`` with its
raw action (as the receiver does with unknown webhook types), so it can be found and replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cdc.hubspot.events import OBJECT_TYPE_IDS
from streams.events import Association, ChangeEvent, Merge, Operation, Origin
from streams.keys import SourceSystem

__all__ = ["EntryFileError", "Read", "read_entry"]

_OPERATIONS = {
    "CREATE": Operation.CREATE,
    "UPDATE": Operation.UPDATE,
    "DELETE": Operation.DELETE,
    "RESTORE": Operation.RESTORE,
    "MERGE": Operation.MERGE,
    "GDPR_DELETE": Operation.PRIVACY_DELETION,
    "SNAPSHOT": Operation.UPSERT,
    "ASSOCIATION_ADDED": Operation.ASSOCIATION,
    "ASSOCIATION_REMOVED": Operation.ASSOCIATION,
}


class EntryFileError(ValueError):
    """The file is not an entry (no ``journalEvents`` list): the message names what is wrong, no values."""


@dataclass(frozen=True)
class Read:
    events: list[ChangeEvent]
    foreign: int
    """Events of another portal (the global journal's, or a misrouted file): not ours to publish."""
    unreadable: int
    """Events published as ``Operation.OTHER``: their shape was not one this version reads."""


def _when(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    return str(value)


def _type_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _scalar(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def read_entry(file: Any, *, portal: str, offset: str, received_at: datetime) -> Read:
    """Every event of one entry file as change events (module docstring); :class:`EntryFileError` when the
    file is no entry at all."""
    if not isinstance(file, Mapping) or not isinstance(file.get("journalEvents"), list):
        raise EntryFileError("the entry file has no journalEvents list")
    events: list[ChangeEvent] = []
    foreign = unreadable = 0
    for index, raw in enumerate(file["journalEvents"]):
        if isinstance(raw, Mapping) and _text(raw.get("portalId")) not in {None, portal}:
            foreign += 1
            continue
        translated = _translate(raw, portal=portal, event_id=f"{offset}#{index}", received_at=received_at)
        if not translated or translated[0].operation is Operation.OTHER:
            unreadable += 1
        events += translated or [_other(raw, portal, f"{offset}#{index}", received_at)]
    return Read(events, foreign, unreadable)


def _other(raw: Any, portal: str, event_id: str, received_at: datetime) -> ChangeEvent:
    action = str(raw.get("action")) if isinstance(raw, Mapping) else "?"
    return ChangeEvent(
        source=SourceSystem.HUBSPOT, tenant=portal, object_type="unknown", object_id=f"journal-{event_id}",
        operation=Operation.OTHER, origin=Origin.JOURNAL, source_event_id=event_id,
        source_event_type=f"journal.{action}"[:100], occurred_at=received_at, received_at=received_at,
    )  # fmt: skip


def _translate(raw: Any, *, portal: str, event_id: str, received_at: datetime) -> list[ChangeEvent]:
    """One journal event as change events; [] when it cannot be read (the caller publishes it as OTHER)."""
    if not isinstance(raw, Mapping):
        return []
    action = str(raw.get("action") or "")
    type_id, object_id = _text(raw.get("objectTypeId")), _text(raw.get("objectId"))
    object_type = OBJECT_TYPE_IDS.get(type_id or "", type_id)
    operation = _OPERATIONS.get(action)
    if operation is None or object_type is None or object_id is None:
        return []
    common: dict[str, Any] = {
        "source": SourceSystem.HUBSPOT, "tenant": portal, "object_type": object_type, "object_id": object_id,
        "operation": operation, "origin": Origin.JOURNAL, "source_event_id": event_id,
        "source_event_type": f"journal.{action}", "occurred_at": _when(raw.get("occurredAt"), received_at),
        "received_at": received_at,
    }  # fmt: skip
    if action == "SNAPSHOT":
        return _snapshot(raw, common)
    special = _SPECIAL.get(operation)
    if special is not None:
        return special(raw, common)
    return [ChangeEvent(**common)]


def _updates(raw: Mapping[str, Any], common: dict[str, Any]) -> list[ChangeEvent]:
    """One ``update`` per changed property, as the webhooks send them."""
    changes = raw.get("propertyChanges")
    if not isinstance(changes, Mapping) or not changes:
        return []
    return [
        ChangeEvent(**common, changed_properties={str(name): _scalar(value)})
        for name, value in changes.items()
    ]


def _snapshot(raw: Mapping[str, Any], common: dict[str, Any]) -> list[ChangeEvent]:
    """A snapshot's values are the record's current state (the properties asked for): an UPSERT with them."""
    values = raw.get("propertyChanges")
    if not isinstance(values, Mapping):
        return []
    return [ChangeEvent(**common, record={str(name): _scalar(value) for name, value in values.items()})]


def _merge(raw: Mapping[str, Any], common: dict[str, Any]) -> list[ChangeEvent]:
    """Keyed by the primary record, as the webhook's merge event (its field names: unverified)."""
    primary, merged = _text(raw.get("primaryObjectId")), raw.get("mergedObjectIds")
    if primary is None:
        return []
    merge = Merge(
        primary_object_id=primary,
        merged_object_ids=tuple(str(i) for i in merged if _text(i)) if isinstance(merged, list) else (),
        new_object_id=_text(raw.get("newObjectId")),
    )
    return [ChangeEvent(**{**common, "object_id": primary}, merge=merge)]


def _association(raw: Mapping[str, Any], common: dict[str, Any]) -> list[ChangeEvent]:
    to_type_id, to_id = _text(raw.get("associatedObjectTypeId")), _text(raw.get("associatedObjectId"))
    if to_type_id is None or to_id is None:
        return []
    to_type, object_type = OBJECT_TYPE_IDS.get(to_type_id, to_type_id), common["object_type"]
    association = Association(
        to_object_type=to_type,
        to_object_id=to_id,
        association_type_id=_type_id(raw.get("associationTypeId", raw.get("associationType"))),
        category=f"{object_type.upper()}_TO_{to_type.upper()}",
        removed=raw.get("action") == "ASSOCIATION_REMOVED",
    )
    return [ChangeEvent(**common, association=association)]


_SPECIAL: dict[Operation, Callable[[Mapping[str, Any], dict[str, Any]], list[ChangeEvent]]] = {
    Operation.UPDATE: _updates,
    Operation.MERGE: _merge,
    Operation.ASSOCIATION: _association,
}
