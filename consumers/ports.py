"""The ports the sync engine talks to a CRM through. `cdc/` implements them over HTTP
(`cdc.hubspot.gateway`, `cdc.dataverse.gateway`); the engine never does HTTP itself.

Values are the CRM's own wire values: HubSpot properties as strings (or None), Dataverse columns as JSON
scalars. Associations are addressed by the keys of `consumers.config.AssociationMap`: on HubSpot
``<object>:<type id>`` (e.g. ``company:1``, the primary company), on Dataverse ``<lookup>:<table>``
(e.g. ``parentcustomerid:account``); the value is the related record's id, or None for none.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from consumers.owners import Owner
from streams.codec import Scalar
from streams.keys import SourceSystem

__all__ = [
    "CrmGateway",
    "CrmUnavailableError",
    "FieldInfo",
    "Record",
    "SentJournal",
    "WriteKind",
    "WriteOp",
    "WriteOutcome",
]


@dataclass(frozen=True, slots=True)
class Record:
    """A record as read from a CRM."""

    object_type: str
    object_id: str
    values: Mapping[str, Scalar]
    version: str | None = None
    """Dataverse ETag (``W/"123"``) / HubSpot ``updatedAt`` ISO string: the concurrency token."""
    modified_at: datetime | None = None
    associations: Mapping[str, str | None] = field(default_factory=dict)
    """Association key -> related record id (only for the keys asked for)."""
    merged_ids: tuple[str, ...] = ()
    """The ids the CRM says were merged into this record, oldest first (HubSpot; a read of a merged-away id
    answers with the merge's record, under its new id). Always read: a lost merge event shows here."""


class WriteKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One write to one record. ``ref`` is the caller's handle, echoed in the outcome."""

    ref: str
    kind: WriteKind
    object_type: str
    values: Mapping[str, Scalar]
    object_id: str | None = None
    if_match: str | None = None
    """Dataverse: the ETag the plan was computed from (412 -> `WriteOutcome.conflict`)."""
    associations: Mapping[str, str | None] = field(default_factory=dict)
    """Association key -> related id to set, or None to clear (only ones this daemon set)."""
    origin_id: str | None = None
    """CREATE: the id of the record in the other CRM this one copies. A gateway whose target holds that id
    in a unique property (HubSpot) or under an alternate key (Dataverse) creates-or-updates by it, so the
    same create sent twice (a batch retried, or applied by two replicas across a rebalance) makes one
    record."""


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    ref: str
    ok: bool
    object_id: str | None = None
    version: str | None = None
    modified_at: datetime | None = None
    conflict: bool = False
    """The record changed since it was read (Dataverse 412): re-read and re-plan, not an error."""
    error: str | None = None
    """A record error (validation, 400/404 for this input): counts toward dead-lettering."""


class BatchRevokedError(Exception):
    """The batch's partitions went to another replica (a consumer-group rebalance) before all its writes
    were sent: the rest is not written and nothing is committed; the partitions' new owner reads the batch
    again from the committed offsets."""


class CrmUnavailableError(Exception):
    """A system error (429, 5xx, timeout, auth refused after re-auth): pause and retry the whole batch.

    Never a reason to dead-letter a record: an outage must not empty the queue into dead letters.
    """

    def __init__(self, system: SourceSystem, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{system} unavailable: {reason}")
        self.system = system
        self.reason = reason
        self.retry_after = retry_after
        """Seconds the CRM asked to wait (`consumers.retries` obeys it), or None."""


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One property/column as its CRM's metadata describes it (`CrmGateway.fields`)."""

    kind: str
    """HubSpot ``type`` (string, number, enumeration, bool, date, datetime) or Dataverse ``AttributeType``."""
    writable: bool = True
    """HubSpot: neither ``modificationMetadata.readOnlyValue`` nor ``calculated``; Dataverse:
    ``IsValidForCreate`` or ``IsValidForUpdate``."""
    options: frozenset[str] | None = None
    """The option values, where they were read."""


class CrmGateway(Protocol):
    """Reads and batched writes against one CRM. Each call may make several API requests (batching up to
    the API's size limits); it raises `CrmUnavailableError` for system errors and reports record errors
    per item."""

    @property
    def system(self) -> SourceSystem: ...

    @property
    def tenant(self) -> str: ...

    async def read(
        self,
        object_type: str,
        ids: Sequence[str],
        *,
        fields: Sequence[str],
        associations: Sequence[str] = (),
        archived: bool = False,
    ) -> dict[str, Record]:
        """The current state of these records, by the ids asked for; missing (deleted) ids are absent. An id
        merged into another record (HubSpot) answers with that record, whose ``object_id`` differs.
        ``archived``: the deleted ones instead, as the CRM keeps them (HubSpot keeps archived records for
        90 days; a deleted Dataverse row is gone, so that answer is always empty)."""
        ...

    async def find(
        self,
        object_type: str,
        field: str,
        values: Sequence[str],
        *,
        fields: Sequence[str],
        contains: bool = False,
    ) -> dict[str, list[Record]]:
        """Match lookup: for each value, the records whose ``field`` equals it (emails case-insensitively).
        Several records for one value are returned as they are: the caller refuses ambiguous matches.
        ``contains``: a domain, looked for inside a field that may hold a whole URL (Dataverse
        ``websiteurl``); a field holding bare hosts (HubSpot ``domain``) may still compare equal. The caller
        normalizes the candidates' values and keeps the ones whose match key agrees."""
        ...

    async def lookup(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        """A field lookup (``owner_email``: HubSpot owner id -> email) for these values read from this
        CRM; a key not found is absent, a kind this CRM does not know answers nothing."""
        ...

    async def owners(self, *, refresh: bool = False) -> Sequence[Owner]:
        """Every owner (HubSpot) or system user (Dataverse), active or not, from a list read at the first
        call and again after the configured interval; ``refresh``: a record names someone not in it, so
        read it again unless it was read within the miss bound."""
        ...

    async def option_labels(self, object_type: str, field: str) -> dict[str, str]:
        """An enumerated field's options as its metadata lists them now: option value -> label (a live
        option set's, `consumers.live_options`). Raises `CrmUnavailableError` for system errors and
        `LookupError` for a field that is missing or not enumerated."""
        ...

    async def fields(self, object_type: str, with_options: Collection[str]) -> dict[str, FieldInfo]:
        """The object's properties/columns as its metadata describes them (`consumers.crm_check`), the
        options of those in ``with_options`` too; an object the CRM does not have answers nothing."""
        ...

    async def own_writes(
        self, object_type: str, ids: Sequence[str], *, fields: Sequence[str]
    ) -> dict[str, dict[str, Scalar]]:
        """Per record, the ``fields`` whose last writer the CRM names as this daemon, with the value it
        wrote: a value the sync wrote whose link update never committed (the replica died between the two)
        is no user's edit. A CRM that cannot tell (Dataverse: only a row's ``modifiedby``, not a column's)
        answers nothing. Asked only for pairs in conflict, so the normal path makes no such call."""
        ...

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        """Apply the writes (batched per object and kind), one outcome per op, in order."""
        ...


class SentJournal(Protocol):
    """Where the applier's notes of what it is about to write (`consumers.sent.SentValues`) are made
    durable before it writes them (`streams.sent_log.SentLog`)."""

    async def record(self, notes: Mapping[str, Mapping[str, tuple[str, str]]]) -> None:
        """Record key -> its notes, kept once this returns: a write sent afterwards that lands while its
        link update never commits (the replica killed between the two) is still known as this daemon's.
        Raises when they could not be kept: nothing may be written then."""
        ...
