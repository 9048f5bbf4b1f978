"""Links: which HubSpot record and which Dataverse record are one pair, and what was last synced.

Topic `links` (compacted). Key: ``link/<link_id>``; the value names both sides, so the link store
(`streams.link_store`), rebuilt by reading the topic from the start (`streams.link_view`), finds a pair by
either side's record key and by the ids of HubSpot records merged into it. A tombstone (null value) deletes
the pair. This module holds the topic's schema, keys and codec.

Per side and per field the link keeps a fingerprint of the value last written or read. A change whose
mapped values match those fingerprints is our own echo (guarantee 3); a field whose fingerprint moved on
both sides since the last sync is a conflict for the step's policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import ClassVar, Self

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from streams.codec import Codec, Scalar, Versioned
from streams.keys import RecordRef, SourceSystem, join_key, split_key

__all__ = [
    "LINK_CODEC",
    "FieldSync",
    "Link",
    "LinkSide",
    "fingerprint",
    "link_id_for",
    "link_id_from_key",
    "link_key",
]

LINK_KEY_PREFIX = "link"


def fingerprint(value: Scalar) -> str:
    """A short stable digest of one field value; equal values give equal fingerprints across restarts."""
    return hashlib.blake2b(orjson.dumps(value), digest_size=10).hexdigest()


def link_id_for(hubspot: RecordRef, dataverse: RecordRef) -> str:
    """Deterministic id of a new pair, so a retried or replayed link of the same two records is one link."""
    digest = hashlib.blake2b(f"{hubspot.key}\n{dataverse.key}".encode(), digest_size=16)
    return digest.hexdigest()


def link_key(link_id: str) -> str:
    return join_key(LINK_KEY_PREFIX, link_id)


def link_id_from_key(key: str) -> str:
    parts = split_key(key)
    if len(parts) != 2 or parts[0] != LINK_KEY_PREFIX:  # noqa: PLR2004 -- link/<id>
        raise ValueError(f"not a link key (link/<link_id>): {key!r}")
    return parts[1]


class FieldSync(BaseModel):
    """The last-synced state of one field on one side."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: str = Field(min_length=1)
    synced_at: AwareDatetime
    source_modified_at: AwareDatetime | None = None


class LinkSide(RecordRef):
    """One side of a pair, with what was last synced from or to it."""

    fields: dict[str, FieldSync] = Field(default_factory=dict)
    version: str | None = Field(
        default=None,
        description="Row version last seen (Dataverse versionnumber/ETag, HubSpot lastmodifieddate).",
    )
    modified_at: AwareDatetime | None = None
    merged_ids: tuple[str, ...] = Field(
        default=(), description="Ids of HubSpot records merged into this one; lookups by them find this pair."
    )

    @property
    def ref(self) -> RecordRef:
        return RecordRef(
            system=self.system, tenant=self.tenant, object_type=self.object_type, object_id=self.object_id
        )

    def alias_keys(self) -> Iterator[str]:
        """Its own key, then the keys of merged-away records."""
        yield self.key
        for old_id in self.merged_ids:
            yield join_key(self.system, self.tenant, self.object_type, old_id)


class Link(Versioned):
    """A HubSpot record and a Dataverse record kept in sync as one pair."""

    SCHEMA: ClassVar[str] = "link"

    link_id: str = Field(min_length=1)
    hubspot: LinkSide
    dataverse: LinkSide
    revision: int = Field(default=1, ge=1, description="Bumped on every update; a newer revision wins.")
    created_at: AwareDatetime
    updated_at: AwareDatetime
    waiting_for: tuple[str, ...] = Field(
        default=(),
        description="Keys of related records with no counterpart yet that an association of this pair "
        "names: when one of them is linked, the pair is planned again (kept in the link, so a restart "
        "forgets none).",
    )

    @model_validator(mode="after")
    def _sides_are_the_right_systems(self) -> Self:
        if (
            self.hubspot.system is not SourceSystem.HUBSPOT
            or self.dataverse.system is not SourceSystem.DATAVERSE
        ):
            raise ValueError(
                "a link's 'hubspot' side must be a HubSpot record and 'dataverse' a Dataverse one"
            )
        return self

    @property
    def key(self) -> str:
        return link_key(self.link_id)

    def side(self, system: SourceSystem) -> LinkSide:
        return self.hubspot if system is SourceSystem.HUBSPOT else self.dataverse


LINK_CODEC: Codec[Link] = Codec(Link)
