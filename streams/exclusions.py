"""The `exclusions` topic: every record the sync refuses or skips, with why, until it syncs.

Key: the source record's key (`streams.keys.RecordRef.key`, as change events), so a record has one entry
however often it is refused. The value is the newest `Exclusion` (its count and first-seen time carried on
from the one before: `Exclusion.again`); a tombstone clears it once the record syncs. The topic is
compacted: it holds the records excluded now.

The sync writes both in the transaction of the batch that decided them (`consumers.exclusions` decides,
the apply loop produces), and only tombstones a key it knows to be excluded (`fold`): every replica tails
the topic (`streams.exclusion_view.ExclusionsView.run`), so a normal sync writes no tombstone per record.
`cdc excluded` and the sync health page read it whole (`streams.exclusion_view.load_exclusions`, then
`ExclusionsView.select`). This module is pure (the engine's `BatchResult` holds its values); the reading is
in `streams.exclusion_view`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from streams.codec import Codec, Scalar, Versioned
from streams.keys import RecordRef

__all__ = [
    "COUNTED_ONLY",
    "EVENT_IDS_KEPT",
    "EXCLUSION_CODEC",
    "LISTED",
    "Exclusion",
    "ExclusionReason",
    "Observed",
    "Seen",
    "fold",
    "short",
]

EVENT_IDS_KEPT = 20
"""The newest event ids an exclusion keeps (a record refused on every change would grow without end)."""
VALUE_CHARS = 200
"""A value that caused an exclusion is kept up to this many characters (a ``too_long`` one is 65k)."""


class ExclusionReason(StrEnum):
    """Every skip and refusal the sync makes (the ``reason`` label of ``cdc_sync_skipped_total``).

    Record refusals (`consumers.planner`, `consumers.applier`): the step does not run for the record.
    Field skips (`consumers.values`, `consumers.owners`, `consumers.planner`): one field is left as it is.
    Merges and rules (`consumers.merges`, `consumers.rule_effects`, `consumers.lifecycle`)."""

    AMBIGUOUS_MATCH = "ambiguous_match"
    EMPTY_MATCH_KEY = "empty_match_key"
    COUNTERPART_DELETED = "counterpart_deleted"
    CREATE_DISABLED = "create_disabled"
    NOT_IN_SYNC_SET = "not_in_sync_set"
    SOURCE_RECORD_GONE = "source_record_gone"
    NO_OPTION_COUNTERPART = "no_option_counterpart"
    NO_OPTION_SET = "no_option_set"
    OWNER_UNKNOWN = "owner_unknown"
    OWNER_NO_COUNTERPART = "owner_no_counterpart"
    OWNER_DISABLED = "owner_disabled"
    LOOKUP_NOT_FOUND = "lookup_not_found"
    UNPARSEABLE = "unparseable"
    INCOMPATIBLE = "incompatible"
    TOO_LONG = "too_long"
    EMPTY_NOT_OVERWRITTEN = "empty_not_overwritten"
    ASSOCIATION_NOT_LINKED = "association_not_linked"
    DELETE_NOT_PROPAGATED = "delete_not_propagated"
    DELETE_OF_UNLINKED = "delete_of_unlinked"
    MERGE_CONFLICT = "merge_conflict"
    RULE_WRITE_FAILED = "rule_write_failed"
    RULE_TARGET_GONE = "rule_target_gone"
    LIFECYCLE_BACKWARDS = "lifecycle_backwards"
    LIFECYCLE_UNKNOWN_STAGE = "lifecycle_unknown_stage"


COUNTED_ONLY = frozenset(
    {
        # What the configuration asks for, not a problem with the record: nothing to fix or retry.
        ExclusionReason.NOT_IN_SYNC_SET,
        ExclusionReason.CREATE_DISABLED,
        ExclusionReason.EMPTY_NOT_OVERWRITTEN,
        ExclusionReason.DELETE_NOT_PROPAGATED,
        ExclusionReason.LIFECYCLE_BACKWARDS,
        # Resolves itself: the pair is planned again once the related record is linked (`Link.waiting_for`).
        ExclusionReason.ASSOCIATION_NOT_LINKED,
        # Nothing left to list: the record is gone.
        ExclusionReason.SOURCE_RECORD_GONE,
        ExclusionReason.DELETE_OF_UNLINKED,
        ExclusionReason.RULE_TARGET_GONE,
        # Not about one source record (a merge's two links; a rule's related record): audited instead.
        ExclusionReason.MERGE_CONFLICT,
        ExclusionReason.RULE_WRITE_FAILED,
        ExclusionReason.LIFECYCLE_UNKNOWN_STAGE,
    }
)
"""Reasons only counted (``cdc_sync_skipped_total``), never listed as exclusions."""
LISTED = frozenset(ExclusionReason) - COUNTED_ONLY
"""Reasons a record is listed for: an admin can fix its data (or the other CRM's) and retry it."""


class Exclusion(Versioned):
    """Why one source record does not sync (or syncs without some fields), as last seen."""

    SCHEMA: ClassVar[str] = "exclusion"

    step: str = Field(min_length=1)
    reason: ExclusionReason
    reasons: tuple[ExclusionReason, ...] = Field(
        default=(), description="Every listed reason of the record's last plan, the main one first."
    )
    record: RecordRef = Field(description="The source record (the key of this entry).")
    counterpart: RecordRef | None = Field(default=None, description="Its counterpart, where one is known.")
    fields: tuple[str, ...] = Field(default=(), description="The target fields left as they are.")
    values: dict[str, Scalar] = Field(
        default_factory=dict, description="Source field -> the value that caused it (match key, option...)."
    )
    detail: str | None = Field(default=None, description="e.g. '2 candidates: <ids>'.")
    event_ids: tuple[str, ...] = ()
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    count: int = Field(default=1, ge=1, description="How many times the record was refused so far.")

    @property
    def key(self) -> str:
        return self.record.key

    def again(self, previous: Exclusion | Seen | None) -> Exclusion:
        """This observation carried on from the record's previous exclusion: first seen, count, event ids."""
        if previous is None:
            return self
        ids = tuple(dict.fromkeys((*previous.event_ids, *self.event_ids)))[-EVENT_IDS_KEPT:]
        return self.model_copy(
            update={
                "first_seen": min(previous.first_seen, self.first_seen),
                "count": previous.count + self.count,
                "event_ids": ids,
            }
        )

    def matches(self, *, reason: str | None = None, step: str | None = None) -> bool:
        """Is it one of those asked for (a reason among its reasons; its step)?"""
        return (reason is None or reason in {self.reason, *self.reasons}) and (
            step is None or step == self.step
        )


EXCLUSION_CODEC: Codec[Exclusion] = Codec(Exclusion)


@dataclass(frozen=True, slots=True)
class Seen:
    """What the sync keeps of an exclusion in memory: enough to carry it on (`Exclusion.again`) and count it,
    about a tenth of the whole entry (the values and references stay in the topic)."""

    step: str
    reason: ExclusionReason
    first_seen: datetime
    count: int
    event_ids: tuple[str, ...]

    @classmethod
    def of(cls, e: Exclusion) -> Seen:
        return cls(e.step, e.reason, e.first_seen, e.count, e.event_ids)


Observed = tuple[str, Exclusion | None]
"""What a batch saw of one source record: excluded (the exclusion), or synced (``None``)."""


def short(value: Scalar) -> Scalar:
    """A value as an exclusion keeps it: long text cut to `VALUE_CHARS`."""
    if isinstance(value, str) and len(value) > VALUE_CHARS:
        return value[:VALUE_CHARS] + "…"
    return value


def fold(known: Mapping[str, Exclusion | Seen], observed: Iterable[Observed]) -> list[Observed]:
    """The entries to produce for a batch's observations, in order, one per key: an exclusion carried on
    from the known one; a tombstone only for a key that is excluded now (known, or earlier in the batch).
    A record synced that no one excluded writes nothing."""
    staged: dict[str, Exclusion | None] = {}
    for key, seen in observed:
        before: Exclusion | Seen | None = staged[key] if key in staged else known.get(key)
        if seen is not None:
            staged[key] = seen.again(before)
        elif key in known:
            staged[key] = None
        else:
            staged.pop(key, None)  # excluded and synced within the batch, never published: nothing to clear
    return list(staged.items())
