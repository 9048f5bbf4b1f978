"""Links: which HubSpot record and which Dataverse record are one pair, and what was last synced.

Topic `links` (compacted). Key: ``link/<link_id>``; the value names both sides, so the materialized view
(:class:`LinkIndex`), rebuilt by reading the topic from the start, finds a pair by either side's record key
and by the ids of HubSpot records merged into it. A tombstone (null value) deletes the pair.

Per side and per field the link keeps a fingerprint of the value last written or read. A change whose
mapped values match those fingerprints is our own echo (guarantee 3); a field whose fingerprint moved on
both sides since the last sync is a conflict for the step's policy.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, ClassVar, Self

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from streams.codec import Codec, Scalar, Versioned
from streams.keys import RecordRef, SourceSystem, join_key, split_key

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


class LinkIndex:
    """The materialized view of the `links` topic: apply every record in offset order, look up by either side.

    Pure and synchronous; the consumer that feeds it from Kafka lives with the sync engine. Links are held
    as their encoded JSON, zlib-compressed, and decoded on lookup (with a small cache of recent ones): a
    decoded link with its per-field fingerprints is some 16 KB of Python objects, its compressed JSON a
    small fraction of that (measured: 100,000 links took 1.6 GB decoded).
    """

    CACHE_SIZE = 4096

    def __init__(self) -> None:
        self._raw: dict[str, bytes] = {}
        self._by_record: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._cache: OrderedDict[str, Link] = OrderedDict()
        self._waiters: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._raw)

    def apply(self, link_id: str, link: Link | None) -> None:
        """Apply one record of the topic: a value replaces the pair, ``None`` (a tombstone) removes it."""
        self._apply(link_id, None if link is None else LINK_CODEC.encode(link), link)

    def apply_raw(self, link_id: str, raw: bytes | None) -> None:
        """Apply one record as read from the topic (validated lazily, on lookup)."""
        self._apply(link_id, raw, None)

    def revision(self, link_id: str) -> int | None:
        packed = self._raw.get(link_id)
        return None if packed is None else int(orjson.loads(zlib.decompress(packed)).get("revision", 1))

    def _apply(self, link_id: str, raw: bytes | None, link: Link | None) -> None:
        old = self._raw.pop(link_id, None)
        self._cache.pop(link_id, None)
        if old is not None:
            previous = orjson.loads(zlib.decompress(old))
            old_keys, old_kind = _keys_of(previous)
            self._counts[old_kind] -= 1
            for key in old_keys:
                if self._by_record.get(key) == link_id:
                    del self._by_record[key]
            for key in previous.get("waiting_for", ()):
                self._waiters.get(key, set()).discard(link_id)
                if not self._waiters.get(key, True):
                    del self._waiters[key]
        if raw is None:
            return
        decoded = orjson.loads(raw)
        keys, kind = _keys_of(decoded)
        self._raw[link_id] = zlib.compress(raw, 1)
        self._counts[kind] = self._counts.get(kind, 0) + 1
        for key in keys:
            self._by_record[key] = link_id
        for key in decoded.get("waiting_for", ()):
            self._waiters.setdefault(key, set()).add(link_id)
        if link is not None:
            self._remember(link_id, link)

    def _remember(self, link_id: str, link: Link) -> None:
        self._cache[link_id] = link
        self._cache.move_to_end(link_id)
        while len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)

    def get(self, link_id: str) -> Link | None:
        link = self._cache.get(link_id)
        if link is not None:
            self._cache.move_to_end(link_id)
            return link
        packed = self._raw.get(link_id)
        if packed is None:
            return None
        link = Link.model_validate_json(zlib.decompress(packed))
        self._remember(link_id, link)
        return link

    def find(self, record: RecordRef | str) -> Link | None:
        """The pair holding this record (by its key, or the key of a record merged into it)."""
        key = record if isinstance(record, str) else record.key
        link_id = self._by_record.get(key)
        return None if link_id is None else self.get(link_id)

    def waiting_on(self, record_key: str) -> set[str]:
        """The links whose pair waits for this record to be linked (`Link.waiting_for`)."""
        return set(self._waiters.get(record_key, ()))

    def counts(self) -> dict[str, int]:
        """Links per pair of object types (``<hubspot object>~<dataverse object>``)."""
        return {kind: n for kind, n in self._counts.items() if n}

    def __iter__(self) -> Iterator[Link]:
        for link_id in list(self._raw):
            link = self.get(link_id)
            if link is not None:
                yield link


def _keys_of(raw: dict[str, Any]) -> tuple[list[str], str]:
    """The record keys a link's JSON answers to (both sides and merged-away ids), and its pair kind."""
    keys: list[str] = []
    for side in (raw["hubspot"], raw["dataverse"]):
        parts = (side["system"], side["tenant"], side["object_type"])
        keys.append(join_key(*parts, side["object_id"]))
        keys.extend(join_key(*parts, old) for old in side.get("merged_ids", ()))
    return keys, f"{raw['hubspot']['object_type']}~{raw['dataverse']['object_type']}"
