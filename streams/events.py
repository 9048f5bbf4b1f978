"""Change events: one change of one record in one CRM, on `changes.hubspot` / `changes.dataverse`.

The envelope follows Debezium's habits (operation, full record when known, source identity and version,
timestamps) in the vocabulary of the two CRMs. Key: the source record's key
(``<system>/<tenant>/<object_type>/<object_id>``, `streams.keys`), so that all changes of one source
record share a partition and stay in order.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from streams.codec import Codec, Scalar, Versioned
from streams.keys import RecordRef, SourceSystem, join_key


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UPSERT = "upsert"
    """Created or updated: the source cannot tell (Dataverse's delta feed reports 'new or updated')."""
    DELETE = "delete"
    MERGE = "merge"
    RESTORE = "restore"
    ASSOCIATION = "association"
    PRIVACY_DELETION = "privacy_deletion"
    OTHER = "other"
    """A change type this version does not interpret (published as-is; see ``source_event_type``)."""


class Origin(StrEnum):
    """Which part of the daemon saw the change; backfills must never overwrite fresher live changes."""

    WEBHOOK = "webhook"
    RECONCILER = "reconciler"
    CHANGE_TRACKING = "change_tracking"
    RESYNC = "resync"
    JOURNAL = "journal"
    """HubSpot's Webhooks Journal, read by offset (`cdc poll`)."""


class Merge(BaseModel):
    """A HubSpot merge: the surviving record, the merged-away ids, and the new id HubSpot may assign."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    primary_object_id: str = Field(min_length=1)
    merged_object_ids: tuple[str, ...] = ()
    new_object_id: str | None = None

    @property
    def surviving_id(self) -> str:
        return self.new_object_id or self.primary_object_id


class Association(BaseModel):
    """An association added or removed between the event's record and another record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    to_object_type: str = Field(min_length=1)
    to_object_id: str = Field(min_length=1)
    association_type_id: int | None = None
    category: str | None = None
    primary: bool = False
    removed: bool = False


class ChangeEvent(Versioned):
    """One change of one source record."""

    SCHEMA: ClassVar[str] = "change"

    source: SourceSystem
    tenant: str = Field(min_length=1)
    object_type: str = Field(min_length=1)
    object_id: str = Field(min_length=1)
    operation: Operation
    origin: Origin
    changed_properties: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Property name -> new value, for the properties this change touched.",
    )
    record: dict[str, Scalar] | None = Field(
        default=None, description="The whole record after the change, when the source gave it."
    )
    source_event_id: str | None = Field(
        default=None,
        description="The source's id for the event (HubSpot eventId; not unique across deliveries).",
    )
    source_event_type: str | None = Field(
        default=None, description="The source's own name for the change (HubSpot subscriptionType)."
    )
    source_version: str | None = Field(
        default=None, description="The source's row version (Dataverse versionnumber) or modification stamp."
    )
    change_source: str | None = Field(
        default=None,
        description="Who made the change, as the source says (HubSpot changeSource: CRM_UI, ...).",
    )
    source_app_id: str | None = Field(
        default=None,
        description="The app that made the change (HubSpot sourceId), to recognise our own writes.",
    )
    merge: Merge | None = None
    association: Association | None = None
    pushed: bool | None = Field(
        default=None,
        description="Sent by `cdc push` or `cdc pull`: this record's side wins every conflict in the sync "
        "pass it starts, and only in that pass (absent otherwise).",
    )
    merged_ids: tuple[str, ...] = Field(
        default=(),
        description="Ids the source says were merged into this record, oldest first (HubSpot), when the "
        "change carries the record: the survivor of a merge whose own event was lost is found by them.",
    )
    occurred_at: AwareDatetime = Field(description="When the change happened at the source.")
    received_at: AwareDatetime = Field(description="When the daemon received it.")

    @model_validator(mode="after")
    def _operation_has_its_details(self) -> Self:
        if self.operation is Operation.MERGE and self.merge is None:
            raise ValueError("a merge event needs 'merge' (primary and merged ids)")
        if self.operation is Operation.ASSOCIATION and self.association is None:
            raise ValueError("an association event needs 'association'")
        return self

    @property
    def identity(self) -> str:
        """What this change is, whichever way it arrived: record, operation, occurrence time (ms) and what
        changed (values, the whole record and its version when the change carries them, the association
        edge, the merge). A webhook event and the journal entry of one change share it; their ids, origins
        and arrival times do not enter it."""

        def text(values: dict[str, Scalar]) -> list[tuple[str, str | None]]:
            return sorted((name, None if value is None else str(value)) for name, value in values.items())

        parts: list[object] = [
            self.key,
            self.operation.value,
            round(self.occurred_at.timestamp() * 1000),
            text(self.changed_properties),
            None if self.record is None else text(self.record),
            self.source_version,
        ]
        if self.association is not None:
            a = self.association
            parts.append((a.to_object_type, a.to_object_id, a.association_type_id, a.primary, a.removed))
        if self.merge is not None:
            m = self.merge
            parts.append((m.primary_object_id, sorted(m.merged_object_ids), m.new_object_id))
        return repr(parts)

    @property
    def ref(self) -> RecordRef:
        return RecordRef(
            system=self.source, tenant=self.tenant, object_type=self.object_type, object_id=self.object_id
        )

    @property
    def key(self) -> str:
        return join_key(self.source, self.tenant, self.object_type, self.object_id)


CHANGE_CODEC: Codec[ChangeEvent] = Codec(ChangeEvent)
