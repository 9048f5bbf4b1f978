"""Audit records: one per write (or deliberate non-write), on the `audit` topic.

Key: the target record's key (the source's when nothing was written), so `cdc explain` reads one record's
history from one partition. A privacy deletion's audit keeps no field values (``redacted``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from streams.codec import Codec, Scalar, Versioned
from streams.keys import RecordRef, join_key


class AuditAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LINK = "link"
    UNLINK = "unlink"
    SKIP = "skip"
    RESYNC = "resync"
    """A person asked for the record to be read again and synced (the admin page's "sync now")."""
    REDRIVE = "redrive"
    """A person re-sent a dead letter (the admin page's "redrive")."""


class FieldWrite(BaseModel):
    """One field written: old -> new and the rule that chose the new value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str = Field(min_length=1, description="The target's field name.")
    source_field: str | None = None
    old: Scalar = None
    new: Scalar = None
    rule: str = Field(min_length=1, description="e.g. one_side_changed, step_order, newest, source_of_truth.")


class AuditRecord(Versioned):
    """What the sync engine did to one record, and why."""

    SCHEMA: ClassVar[str] = "audit"

    step: str = Field(min_length=1)
    action: AuditAction
    link_id: str | None = None
    source: RecordRef
    target: RecordRef | None = None
    fields: tuple[FieldWrite, ...] = ()
    reason: str | None = Field(default=None, description="Why a record was skipped or refused.")
    source_event_ids: tuple[str, ...] = ()
    dry_run: bool = False
    redacted: bool = Field(default=False, description="A privacy deletion: no field values are kept.")
    actor: str | None = Field(
        default=None, description="The person who asked (an admin page user); none for the engine's own."
    )
    at: AwareDatetime

    @model_validator(mode="after")
    def _redacted_keeps_no_values(self) -> Self:
        if self.redacted and any(f.old is not None or f.new is not None for f in self.fields):
            raise ValueError("a redacted audit record keeps no field values")
        return self

    @property
    def key(self) -> str:
        return (self.target or self.source).key


AUDIT_CODEC: Codec[AuditRecord] = Codec(AuditRecord)


OPERATOR_KEY_PREFIX = "control"


class OperatorAction(Versioned):
    """An operator's action on the sync itself (a pause, a resume), on the audit topic beside the writes.

    Key: ``control/<target>`` (`operator_key`), never a record key: readers of record histories
    (`cdc explain`, the demo) skip these by key."""

    SCHEMA: ClassVar[str] = "operator_action"

    action: Literal["pause", "resume"]
    target: str = Field(min_length=1, description="'*' (everything) or a step name.")
    by: str = Field(min_length=1, description="Who did it: an OS user, a page login.")
    reason: str | None = None
    at: AwareDatetime


def operator_key(target: str) -> str:
    return join_key(OPERATOR_KEY_PREFIX, target)


def is_operator_key(key: bytes | None) -> bool:
    """Is this audit message an `OperatorAction` (not one record's write)?"""
    return key is not None and key.startswith(OPERATOR_KEY_PREFIX.encode() + b"/")


OPERATOR_CODEC: Codec[OperatorAction] = Codec(OperatorAction)
