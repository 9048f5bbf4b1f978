"""HubSpot webhook bodies -> change events: parsing and translation, no I/O.

A body is a JSON array of event objects (webhooks API v3). Field names follow HubSpot's documentation
and the payloads third parties captured: the type arrives as ``subscriptionType`` (or ``eventType`` in the
docs' examples), ids are int64 (kept as strings: they exceed 2^31), ``occurredAt`` is epoch milliseconds.
Legacy per-object types (``contact.propertyChange``, a legacy app's) and the generic ones (``object.*``
with ``objectTypeId``, what a project app's ``crmObjects`` subscriptions send) map to the same events; an
association change is read in both shapes (`_association`). An unknown type is not an error: it is
published as ``Operation.OTHER`` with its raw type, so nothing HubSpot sends is lost.

Two levels of malformed: a body that is not a JSON array of objects is refused whole
(:class:`WebhookBodyError`, the receiver answers 400); one object of the array that is not a readable event
(:class:`WebhookEventError`) is set aside by :func:`read_body` and dead-lettered, so it cannot make HubSpot
retry, and at last drop, the good events delivered beside it.

Whose events: an event naming another portal (or, when one is configured, another app) than the
:class:`Tenant` is neither translated nor dead-lettered but counted apart (:attr:`Batch.foreign`): it is no
change of ours, and another customer's data has no place on our topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streams.events import Association, ChangeEvent, Merge, Operation, Origin
from streams.keys import SourceSystem

# objectTypeId of generic `object.*` events -> our object type names (HubSpot's CRM object type ids).
OBJECT_TYPE_IDS = {
    "0-1": "contact",
    "0-2": "company",
    "0-3": "deal",
    "0-5": "ticket",
    "0-7": "product",
    "0-8": "line_item",
    "0-136": "lead",
}
ACTIONS = {
    "creation": Operation.CREATE,
    "propertyChange": Operation.UPDATE,
    "deletion": Operation.DELETE,
    "merge": Operation.MERGE,
    "restore": Operation.RESTORE,
    "associationChange": Operation.ASSOCIATION,
    "privacyDeletion": Operation.PRIVACY_DELETION,
}


MERGED_IDS = "hs_merged_object_ids"
"""HubSpot's record of the ids merged into a record, ``;``-separated (fact sheet §6: a merge makes a record
whose ``hs_merged_object_ids`` names the merged ids; a read of a merged-away id answers with that record)."""


def merged_ids(properties: Mapping[str, Any], own_id: str) -> tuple[str, ...]:
    """The ids ``hs_merged_object_ids`` says were merged into the record ``own_id`` (oldest first)."""
    raw = properties.get(MERGED_IDS)
    if not isinstance(raw, str):
        return ()
    return tuple(i for i in (part.strip() for part in raw.split(";")) if i and i != own_id)


# The last millisecond a Python datetime can hold (9999-12-31T23:59:59.999Z): a later occurredAt is no date.
MAX_OCCURRED_AT_MS = 253_402_300_799_999


class WebhookBodyError(ValueError):
    """The body is not HubSpot's documented shape; the message is short enough for a 400 answer."""


class TooManyEventsError(WebhookBodyError):
    """The body holds more events than HubSpot ever sends in one request."""


class WebhookEventError(ValueError):
    """One event of a body cannot be read as a change; the message is short and names no values."""


def _id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
        raise ValueError("must be an integer or a string id")
    return str(value)


class WebhookEvent(BaseModel):
    """One event of a webhook body, as HubSpot sends it (unknown extra fields are kept, not refused)."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    subscription_type: str = Field(alias="subscriptionType", min_length=1)
    event_id: str = Field(alias="eventId")
    portal_id: str = Field(alias="portalId")
    occurred_at: int = Field(alias="occurredAt", ge=0, le=MAX_OCCURRED_AT_MS)
    app_id: str | None = Field(default=None, alias="appId")
    subscription_id: str | None = Field(default=None, alias="subscriptionId")
    attempt_number: int = Field(default=0, alias="attemptNumber")
    object_id: str | None = Field(default=None, alias="objectId")
    object_type_id: str | None = Field(default=None, alias="objectTypeId")
    property_name: str | None = Field(default=None, alias="propertyName")
    property_value: str | None = Field(default=None, alias="propertyValue")
    change_source: str | None = Field(default=None, alias="changeSource")
    source_id: str | None = Field(default=None, alias="sourceId")
    primary_object_id: str | None = Field(default=None, alias="primaryObjectId")
    merged_object_ids: tuple[str, ...] = Field(default=(), alias="mergedObjectIds")
    new_object_id: str | None = Field(default=None, alias="newObjectId")
    association_type: str | None = Field(default=None, alias="associationType")
    association_type_id: int | None = Field(default=None, alias="associationTypeId")
    association_category: str | None = Field(default=None, alias="associationCategory")
    from_object_id: str | None = Field(default=None, alias="fromObjectId")
    from_object_type_id: str | None = Field(default=None, alias="fromObjectTypeId")
    to_object_id: str | None = Field(default=None, alias="toObjectId")
    to_object_type_id: str | None = Field(default=None, alias="toObjectTypeId")
    association_removed: bool = Field(default=False, alias="associationRemoved")
    is_primary_association: bool = Field(default=False, alias="isPrimaryAssociation")

    @model_validator(mode="before")
    @classmethod
    def _event_type_is_an_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "subscriptionType" not in data and "eventType" in data:
            return {**data, "subscriptionType": data["eventType"]}
        return data

    @field_validator(
        "event_id", "portal_id", "app_id", "subscription_id", "object_id", "primary_object_id",
        "new_object_id", "from_object_id", "to_object_id", mode="before",
    )  # fmt: skip
    @classmethod
    def _ids_are_strings(cls, value: Any) -> str | None:
        return _id(value)

    @field_validator("association_type_id", mode="before")
    @classmethod
    def _type_id_is_a_number(cls, value: Any) -> int | None:
        # An int in the association APIs; a string of digits from a proxy is still that id.
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        raise ValueError("must be an integer association type id")

    @field_validator("merged_object_ids", mode="before")
    @classmethod
    def _merged_ids_are_strings(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of ids")
        return tuple(str(_id(item)) for item in value)

    @field_validator("property_value", "source_id", "change_source", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: Any) -> str | None:
        # propertyValue is a string in HubSpot's payloads; a number or bool from a proxy is still that value.
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return orjson.dumps(value).decode()
        raise ValueError("must be a string")


def split_body(body: bytes) -> list[dict[str, Any]]:
    """The raw event objects of one request, or :class:`WebhookBodyError` when the body is not an array
    of objects (then nothing of it is HubSpot's, and it is refused whole)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookBodyError("body is not JSON") from None
    if not isinstance(raw, list):
        raise WebhookBodyError(f"body must be a JSON array of events, not {type(raw).__name__}")
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise WebhookBodyError(f"event {index} is not a JSON object")
    return raw


def _validation_reason(error: ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "event"
    return f"{prefix}{field}: {first['msg']}"


def parse_event(item: dict[str, Any]) -> WebhookEvent:
    """One event object, or :class:`WebhookEventError` saying which field is wrong."""
    try:
        return WebhookEvent.model_validate(item)
    except ValidationError as error:
        raise WebhookEventError(_validation_reason(error)) from None


def parse_body(body: bytes) -> list[WebhookEvent]:
    """Every event of one request, or :class:`WebhookBodyError` at the first that is not an event."""
    events = []
    for index, item in enumerate(split_body(body)):
        try:
            events.append(parse_event(item))
        except WebhookEventError as error:
            raise WebhookBodyError(f"event {index}: {error}") from None
    return events


@dataclass(frozen=True)
class Translated:
    event: ChangeEvent
    known_type: bool


def _split_type(event: WebhookEvent) -> tuple[str | None, str]:
    """``contact.propertyChange`` -> (contact, propertyChange); generic types use ``objectTypeId``."""
    prefix, _, action = event.subscription_type.partition(".")
    if prefix == "object":
        return OBJECT_TYPE_IDS.get(event.object_type_id or "", event.object_type_id), action
    return (prefix or None), action


def _type_name(type_id: str | None) -> str | None:
    """``0-1`` -> ``contact``; an id we have no name for (a custom object, ``2-123``) is kept as it is."""
    return OBJECT_TYPE_IDS.get(type_id, type_id) if type_id else None


def _association(event: WebhookEvent, object_type: str | None) -> tuple[str, str, Association]:
    """(object type, record id, association) of an ``associationChange``, in either shape.

    Legacy (``contact.associationChange``): the type prefix is the record's side, ``associationType``
    (``CONTACT_TO_COMPANY``) names both types, ``fromObjectId``/``toObjectId`` the records (fact sheet
    hubspot.md §1.2). Generic (``object.associationChange``): the types come as object type ids,
    ``fromObjectTypeId``/``toObjectTypeId``, with ``associationTypeId`` (seen in community code only,
    hubspot_2026.md §3 lists the legacy fields; unverified), so both spellings are read: an explicit type id
    first, then the prefix or ``objectTypeId``, then ``associationType``; ``objectId`` stands in for a
    missing ``fromObjectId``. An event that still lacks a record or a type is no change
    (:class:`WebhookEventError`: dead-lettered by the receiver, never published half-read).
    """
    named_from = named_to = ""
    if event.association_type:
        named_from, _, named_to = event.association_type.lower().partition("_to_")
    from_type = _type_name(event.from_object_type_id) or object_type or named_from
    to_type = _type_name(event.to_object_type_id) or named_to
    if event.association_type and not (from_type and to_type):
        raise WebhookEventError("associationType: names no object types (expected FROM_TO_TO)")
    from_id, to_id = event.from_object_id or event.object_id, event.to_object_id
    if not (from_id and to_id and from_type and to_type):
        named = (("fromObjectId", from_id), ("toObjectId", to_id), ("fromObjectTypeId", from_type),
                 ("toObjectTypeId", to_type))  # fmt: skip
        missing = ", ".join(name for name, value in named if not value)
        raise WebhookEventError(
            f"{missing}: missing (an association change names both records and their types)"
        )
    association = Association(
        to_object_type=to_type,
        to_object_id=to_id,
        association_type_id=event.association_type_id,
        category=event.association_type or f"{from_type.upper()}_TO_{to_type.upper()}",
        primary=event.is_primary_association,
        removed=event.association_removed,
    )
    return from_type, from_id, association


def translate(event: WebhookEvent, received_at: datetime) -> Translated:
    """One HubSpot webhook event as a change event keyed by the record it is about.

    :class:`WebhookEventError` when the event cannot be one (e.g. an association type naming no types).
    """
    try:
        return _translate(event, received_at)
    except ValidationError as error:
        raise WebhookEventError(_validation_reason(error)) from None


def _translate(event: WebhookEvent, received_at: datetime) -> Translated:
    object_type, action = _split_type(event)
    operation = ACTIONS.get(action, Operation.OTHER)
    object_id = event.object_id
    merge = association = None
    changed: dict[str, str | None] = {}
    if operation is Operation.UPDATE and event.property_name:
        changed[event.property_name] = event.property_value
    elif operation is Operation.MERGE and event.primary_object_id:
        merge = Merge(
            primary_object_id=event.primary_object_id,
            merged_object_ids=event.merged_object_ids,
            new_object_id=event.new_object_id,
        )
        object_id = object_id or merge.surviving_id
    elif operation is Operation.ASSOCIATION:
        object_type, object_id, association = _association(event, object_type)
    known = operation is not Operation.OTHER and object_type is not None and object_id is not None
    if operation is Operation.MERGE and merge is None:
        known, operation = False, Operation.OTHER
    return Translated(
        event=ChangeEvent(
            source=SourceSystem.HUBSPOT,
            tenant=event.portal_id,
            object_type=object_type or "unknown",
            object_id=object_id or f"event-{event.event_id}",
            operation=operation,
            origin=Origin.WEBHOOK,
            changed_properties=dict(changed),
            source_event_id=event.event_id,
            source_event_type=event.subscription_type,
            change_source=event.change_source,
            source_app_id=event.source_id if event.change_source == "INTEGRATION" else None,
            merge=merge,
            association=association,
            occurred_at=datetime.fromtimestamp(event.occurred_at / 1000, UTC),
            received_at=received_at,
        ),
        known_type=known,
    )


@dataclass(frozen=True)
class Tenant:
    """Whose webhooks these are: our portal (``portalId``) and, when configured, our app (``appId``)."""

    portal_id: str
    app_id: str | None = None

    def foreign_field(self, item: dict[str, Any]) -> str | None:
        """``portalId`` or ``appId`` when the event object names another portal or app than ours, else None.

        Read from the raw object, before the event is validated: an event of another portal is foreign even
        when it is unreadable too. A missing or unreadable ``portalId`` is no portal at all, so that event is
        unreadable instead (dead-lettered); a missing ``appId`` passes, since the signature already proves
        the app (HubSpot documents ``appId`` on every event; the check catches a second app on one URL).
        """
        for field, ours in (("portalId", self.portal_id), ("appId", self.app_id)):
            if ours is None or item.get(field) is None:
                continue
            try:
                theirs = _id(item[field])
            except ValueError:
                continue  # unreadable: validation says so
            if theirs != ours:
                return field
        return None


@dataclass(frozen=True)
class Rejected:
    """An event object of a body that is not a readable event: what it was, and why."""

    index: int
    raw: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class Foreign:
    """An event object naming another portal or app: which field differs, and its value (an account id)."""

    index: int
    field: str
    value: str


@dataclass(frozen=True)
class Batch:
    translated: list[Translated]
    rejected: list[Rejected]
    foreign: list[Foreign]


def read_body(body: bytes, received_at: datetime, tenant: Tenant, max_events: int = 100) -> Batch:
    """The events of one request, each translated, set aside with its reason, or set apart as foreign.

    :class:`WebhookBodyError` only when the body is not a JSON array of objects at all;
    :class:`TooManyEventsError` when it holds more than ``max_events`` (nothing of it is read then).
    """
    items = split_body(body)
    if len(items) > max_events:
        raise TooManyEventsError(
            f"body holds {len(items)} events; the limit is {max_events} (HubSpot sends up to 100)"
        )
    translated, rejected, foreign = [], [], []
    for index, item in enumerate(items):
        field = tenant.foreign_field(item)
        if field is not None:
            foreign.append(Foreign(index, field, str(item[field])[:40]))
            continue
        try:
            translated.append(translate(parse_event(item), received_at))
        except WebhookEventError as error:
            rejected.append(Rejected(index, item, f"event {index}: {error}"))
    return Batch(translated, rejected, foreign)
