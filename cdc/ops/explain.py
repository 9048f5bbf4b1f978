"""`cdc explain <system> <object> <id>`: one record's link and the audit history of every value written.

The link comes from the `links` topic (as the sync stage sees it); the history from the `audit` topic,
every record whose source or target is this record, oldest first. Audit records are keyed by their
target, so the source side's records sit on other partitions: the whole topic is read (``--since``
narrows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cdc.ops._kafka import Raw, load_links, scan
from streams.audit import AUDIT_CODEC, AuditRecord, is_operator_key
from streams.codec import Position, SchemaError
from streams.config import KafkaSettings
from streams.keys import RecordRef, SourceSystem
from streams.links import Link, LinkSide
from streams.topics import TopicCatalog, TopicRole

__all__ = ["Explanation", "RecordQuery", "explain"]


@dataclass(frozen=True)
class RecordQuery:
    """The record asked about; without a tenant, any tenant's record of that id matches."""

    system: SourceSystem
    object_type: str
    object_id: str
    tenant: str | None = None

    def matches(self, ref: RecordRef | None) -> bool:
        return (
            ref is not None
            and ref.system is self.system
            and ref.object_type == self.object_type
            and ref.object_id == self.object_id
            and (self.tenant is None or ref.tenant == self.tenant)
        )

    def matches_side(self, side: LinkSide) -> bool:
        if self.matches(side.ref):
            return True
        merged = self.object_id in side.merged_ids  # a HubSpot record merged into this one
        return merged and side.system is self.system and side.object_type == self.object_type

    def __str__(self) -> str:
        return f"{self.system}/{self.tenant or '*'}/{self.object_type}/{self.object_id}"


@dataclass
class Explanation:
    query: RecordQuery
    links: list[Link] = field(default_factory=list)
    audit: list[tuple[Position, AuditRecord]] = field(default_factory=list)
    unreadable: int = 0

    @property
    def found(self) -> bool:
        return bool(self.links or self.audit)

    def as_json(self) -> dict[str, Any]:
        return {
            "record": str(self.query),
            "links": [link.model_dump(mode="json", exclude_none=True) for link in self.links],
            "audit": [
                {"position": str(where), **record.model_dump(mode="json", exclude_none=True)}
                for where, record in self.audit
            ],
            "unreadable_audit_records": self.unreadable,
        }

    def lines(self) -> list[str]:
        out = [f"record {self.query}"]
        if not self.links:
            out.append("link: none (never synced, or unlinked)")
        for link in self.links:
            out.append(
                f"link {link.link_id} revision {link.revision} created {link.created_at.isoformat()} "
                f"updated {link.updated_at.isoformat()}"
            )
            out.extend(_side_lines(link.hubspot))
            out.extend(_side_lines(link.dataverse))
            if link.waiting_for:
                out.append(f"  waiting for {', '.join(link.waiting_for)} to sync (an association to write)")
        out.append(f"audit: {len(self.audit)} record(s), oldest first")
        for where, record in self.audit:
            out.extend(_audit_lines(where, record))
        return out


def _side_lines(side: LinkSide) -> list[str]:
    extra = "".join(
        f" {name} {value}"
        for name, value in (
            ("version", side.version),
            ("modified", side.modified_at.isoformat() if side.modified_at else None),
            ("merged", ",".join(side.merged_ids) or None),
        )
        if value
    )
    out = [f"  {side.system:<9} {side.key}{extra}"]
    for name, sync in sorted(side.fields.items()):
        modified = (
            f" (source modified {sync.source_modified_at.isoformat()})" if sync.source_modified_at else ""
        )
        out.append(f"    {name:<28} {sync.fingerprint} synced {sync.synced_at.isoformat()}{modified}")
    return out


def _audit_lines(where: Position, record: AuditRecord) -> list[str]:
    target = f" -> {record.target.key}" if record.target else ""
    target += f" (by {record.actor})" if record.actor else ""
    flags = "".join(
        f" [{flag}]" for flag, on in (("dry run", record.dry_run), ("redacted", record.redacted)) if on
    )
    out = [f"  {record.at.isoformat()} {record.step} {record.action}: {record.source.key}{target}{flags}"]
    if record.reason:
        out.append(f"    reason: {record.reason}")
    for write in record.fields:
        source = f" (from {write.source_field})" if write.source_field else ""
        out.append(f"    {write.field}{source}: {write.old!r} -> {write.new!r} [{write.rule}]")
    events = ", ".join(record.source_event_ids) or "-"
    out.append(f"    events: {events}; at {where}")
    return out


async def explain(kafka: KafkaSettings, query: RecordQuery, *, since: datetime | None = None) -> Explanation:
    """The record's links and audit history; reads the links and audit topics to their current ends."""
    result = Explanation(query)
    index = await load_links(kafka)
    result.links = [link for link in index if query.matches_side(link.side(query.system))]

    def take(message: Raw) -> None:
        if is_operator_key(message.key):
            return  # a pause or resume: no record's history
        where = Position(message.topic, message.partition, message.offset)
        try:
            record = AUDIT_CODEC.decode(message.value, where)
        except SchemaError:
            result.unreadable += 1
            return
        if query.matches(record.source) or query.matches(record.target):
            result.audit.append((where, record))

    await scan(kafka, TopicCatalog.from_settings(kafka).name(TopicRole.AUDIT), take, since=since)
    result.audit.sort(key=lambda item: (item[1].at, item[0].partition or 0, item[0].offset or 0))
    return result
