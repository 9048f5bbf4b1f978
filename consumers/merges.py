"""Merges, deletes and privacy deletions: what they do to a batch's links. Pure, no I/O.

Each function reads the batch's staged links and returns what it decides (link changes, audit records,
skips) as a `BatchResult`; the applier stages it (`Batch.take`). Apart from propagating a delete, which
deletes the counterpart first (`Deletion`, sent by the applier), they act on the links alone:

- a HubSpot merge moves the link of the merge's primary record to the survivor (`merge`); the other pairs
  among the merged records are kept for review;
- a merge whose webhook was lost or late shows in the survivor's record, whose ``hs_merged_object_ids``
  names linked records (`lost_merge`): read in a pass, or, for a survivor deleted before any change of it
  was synced, in its archived record, read before routing (`consumers.enrichment`);
- a privacy deletion (GDPR) tombstones the link, with a redacted audit record;
- a delete is propagated only when a step of its direction says so; the link stays otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from consumers.batch import Batch, BatchResult, Failure
from consumers.config import Pair
from consumers.fieldsets import FieldSets
from consumers.ports import Record, WriteKind, WriteOp
from consumers.units import pair_of
from consumers.values import canonical
from streams.audit import AuditAction, AuditRecord
from streams.events import ChangeEvent, Merge, Operation
from streams.keys import SourceSystem
from streams.links import Link, LinkSide, fingerprint
from streams.work import WorkItem

__all__ = ["SPECIAL", "Deletion", "Merged", "Special", "deleted", "lost_merge", "merge", "special"]

HS = SourceSystem.HUBSPOT
SPECIAL = frozenset({Operation.PRIVACY_DELETION, Operation.MERGE, Operation.DELETE})
"""The operations dealt with here rather than planned."""


@dataclass(slots=True)
class Deletion:
    """A delete to propagate: the linked counterpart of the deleted record goes too."""

    item: WorkItem
    pair: Pair
    link: Link
    step: str
    attempts: int = 0
    error: str | None = None

    @property
    def target(self) -> LinkSide:
        return self.link.side(self.item.change.source.other)

    def op(self, ref: str) -> WriteOp:
        target = self.target
        return WriteOp(
            ref=ref,
            kind=WriteKind.DELETE,
            object_type=target.object_type,
            object_id=target.object_id,
            values={},
        )

    def failure(self) -> Failure:
        return Failure(items=[self.item], step=self.step, error=self.error, attempts=self.attempts)


@dataclass(slots=True)
class Special:
    """What a delete, merge or privacy deletion decides."""

    decided: BatchResult
    deletion: Deletion | None = None
    """A delete to propagate."""
    survivor: WorkItem | None = None
    """A merge its event alone cannot settle, as a change of the survivor: to be read and planned."""


class Merged(NamedTuple):
    settled: bool
    """False when the merge event cannot tell which pair continues: the survivor must be read."""
    link: Link | None
    """The link the survivor continues; None when no merged record is linked."""
    decided: BatchResult


def special(item: WorkItem, batch: Batch, fields: FieldSets, now: datetime) -> Special:
    """A merge, a privacy deletion or a delete of one item, on the links as the batch has staged them."""
    change, pair = item.change, pair_of(item.pair)
    if change.operation is Operation.MERGE and change.merge is not None:
        merged = merge(change, change.merge, pair, batch, fields=fields, now=now)
        if merged.settled:
            return Special(merged.decided)
        survivor = change.model_copy(
            update={
                "object_id": change.merge.surviving_id,
                "operation": Operation.UPDATE,
                "merge": None,
                "record": None,
                "changed_properties": {},
            }
        )
        return Special(merged.decided, survivor=item.model_copy(update={"change": survivor}))
    decided = BatchResult()
    link = batch.view.find(change.ref)
    if link is None and change.operation is Operation.DELETE and change.source is HS:
        # The survivor of a merge whose webhook was lost, deleted before any change of it was synced: its
        # archived record (read before routing) names the merged ids the pair's link holds.
        archived = Record(
            change.object_type,
            change.object_id,
            dict(change.changed_properties),
            merged_ids=change.merged_ids,
        )
        link, decided = lost_merge(change, pair, archived, batch, fields=fields, now=now)
    if change.operation is Operation.PRIVACY_DELETION:
        if link is not None:
            decided.links.append((link.link_id, None))
        decided.audits.append(
            AuditRecord(
                step=str(pair),
                action=AuditAction.UNLINK,
                link_id=link.link_id if link else None,
                source=change.ref,
                reason="privacy_deletion",
                redacted=True,
                at=now,
            )
        )
        return Special(decided)
    # A delete: propagated only when a step of this direction says so. The link stays otherwise: the
    # counterpart is not re-created from the surviving side (skipped as ``counterpart_deleted``).
    step = next(
        (
            s
            for s in fields.config.steps_for(pair)
            if s.source.system is change.source and s.deletes == "propagate"
        ),
        None,
    )
    if link is None:
        decided.skips[(str(pair), "delete_of_unlinked")] += 1  # never synced, or our own delete's echo
    elif step is None:
        decided.skips[(str(pair), "delete_not_propagated")] += 1
    else:
        return Special(decided, deletion=Deletion(item=item, pair=pair, link=link, step=step.name))
    return Special(decided)


def deleted(deletion: Deletion, now: datetime, *, dry_run: bool) -> BatchResult:
    """Once the counterpart is deleted (or was gone): the link's tombstone (none in a dry run), the audit
    record and the latency."""
    link, change = deletion.link, deletion.item.change
    decided = BatchResult()
    if not dry_run:
        decided.links.append((link.link_id, None))
    decided.audits.append(
        AuditRecord(
            step=deletion.step,
            action=AuditAction.DELETE,
            link_id=link.link_id,
            source=change.ref,
            target=deletion.target.ref,
            reason="source_deleted",
            source_event_ids=(change.source_event_id,) if change.source_event_id else (),
            dry_run=dry_run,
            at=now,
        )
    )
    decided.latencies.append((deletion.step, max(0.0, (now - change.occurred_at).total_seconds())))
    return decided


def merge(
    change: ChangeEvent,
    merged: Merge,
    pair: Pair,
    batch: Batch,
    *,
    fields: FieldSets,
    now: datetime,
    survivor_record: Record | None = None,
) -> Merged:
    """The pair of the merge's primary record continues with the survivor; the other pairs among the merged
    records are kept for review.

    Not settled when a merge event cannot tell which pair continues: its primary is itself the survivor of an
    earlier merge not applied yet (its webhook lost or late), so the survivor must be read; with its record
    (``survivor_record``) the pair it continues is known. A merge older than one already applied changes
    nothing."""
    decided = BatchResult()
    survivor = merged.surviving_id
    ids = [merged.primary_object_id, *merged.merged_object_ids]
    links = {
        link.link_id: link
        for link in (batch.linked(HS, change.object_type, i) for i in ids)
        if link is not None
    }
    if not links:
        return Merged(True, None, decided)
    if survivor_record is None:
        keep = batch.linked(HS, change.object_type, merged.primary_object_id)
        if keep is None:
            return Merged(False, None, decided)
    else:
        keep = _continued(pair, list(links.values()), survivor_record, fields)
    if survivor in keep.hubspot.merged_ids:
        return Merged(True, keep, decided)  # a late event of a merge a later one already covered
    for other in links.values():
        if other.link_id != keep.link_id:
            decided.skips[(str(pair), "merge_conflict")] += 1
            decided.audits.append(
                AuditRecord(
                    step=str(pair),
                    action=AuditAction.SKIP,
                    link_id=other.link_id,
                    source=other.hubspot.ref,
                    target=other.dataverse.ref,
                    reason=f"merge_conflict: merged into HubSpot {survivor}, which is linked to "
                    f"Dataverse {keep.dataverse.object_id}; this link to {other.dataverse.object_id} "
                    "is kept for review",
                    at=now,
                )
            )
    old_ids = tuple(dict.fromkeys([*keep.hubspot.merged_ids, *(i for i in ids if i != survivor)]))
    side = keep.hubspot.model_copy(update={"object_id": survivor, "merged_ids": old_ids})
    link = keep.model_copy(update={"hubspot": side, "revision": keep.revision + 1, "updated_at": now})
    decided.links.append((link.link_id, link))
    return Merged(True, link, decided)


def lost_merge(
    change: ChangeEvent, pair: Pair, survivor: Record, batch: Batch, *, fields: FieldSets, now: datetime
) -> tuple[Link | None, BatchResult]:
    """The merge a HubSpot survivor's record tells of (its merged ids name linked records) when no merge
    event did: the link the survivor continues, or None when it names no linked record."""
    ids = list(survivor.merged_ids)
    if not any(batch.linked(HS, survivor.object_type, i) for i in ids):
        return None, BatchResult()
    told = Merge(primary_object_id=ids[0], merged_object_ids=tuple(ids[1:]), new_object_id=survivor.object_id)
    merged = merge(change, told, pair, batch, fields=fields, now=now, survivor_record=survivor)
    return merged.link, merged.decided


def _continued(pair: Pair, links: list[Link], survivor: Record, fields: FieldSets) -> Link:
    """Which of the merged records' pairs the survivor continues, known from its record alone: the one last
    synced with the survivor's match value (HubSpot keeps the primary's email, or name), else the first."""
    tracked = fields.tracked(pair)[HS]
    for step in fields.config.steps_for(pair):
        prop = step.match.source if step.source.system is HS else step.match.target
        if (value_type := tracked.get(prop)) is None:
            continue
        wanted = fingerprint(canonical(survivor.values.get(prop), value_type, HS))
        for link in links:
            synced = link.hubspot.fields.get(prop)
            if synced is not None and synced.fingerprint == wanted:
                return link
    return links[0]
