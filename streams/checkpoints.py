"""Checkpoints: where each poller resumes, on the compacted `checkpoints` topic.

Key: ``checkpoint/<system>/<tenant>/<object_type>``. A poller writes its checkpoint only after the events
it read are acknowledged (guarantee 1); the newest value per key is the cursor.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from streams.codec import Codec, Versioned
from streams.keys import SourceSystem, join_key


class CursorKind(StrEnum):
    DELTA_LINK = "delta_link"
    """Dataverse change tracking: the @odata.deltaLink to follow next."""
    MODIFIED_SINCE = "modified_since"
    """HubSpot reconciler: an ISO-8601 last-modified time to search from."""
    JOURNAL_OFFSET = "journal_offset"
    """HubSpot's Webhooks Journal: the opaque offset of the last entry published (read on after it)."""


def checkpoint_key(system: SourceSystem, tenant: str, object_type: str) -> str:
    return join_key("checkpoint", system, tenant, object_type)


class Checkpoint(Versioned):
    """A poller's cursor for one object type of one tenant."""

    SCHEMA: ClassVar[str] = "checkpoint"

    source: SourceSystem
    tenant: str = Field(min_length=1)
    object_type: str = Field(min_length=1)
    kind: CursorKind
    cursor: str = Field(min_length=1)
    updated_at: AwareDatetime
    events_published: int = Field(default=0, ge=0, description="Events published under this cursor's pass.")

    @property
    def key(self) -> str:
        return checkpoint_key(self.source, self.tenant, self.object_type)


CHECKPOINT_CODEC: Codec[Checkpoint] = Codec(Checkpoint)
