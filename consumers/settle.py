"""Settling a batch: a pair's plan and its write outcomes -> the pair's new link and audit records; what a
plan counts for; and the pairs the batch's links let go on (rechecks). Pure, no I/O.

The new link keeps, per side and tracked field, the fingerprint of the value the side holds once the
writes land (`PairPlan.after`); a field whose fingerprint did not move keeps its sync time. A link equal to
the committed one is not written again. An association that names a record with no counterpart yet leaves
the pair waiting for it (`Link.waiting_for`); once that record is linked the pair is planned again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from consumers.batch import Batch, BatchResult
from consumers.config import Pair
from consumers.owners import OWNER_REASONS
from consumers.planner import PairPlan, PairState, SideWrite
from consumers.ports import WriteKind, WriteOutcome
from consumers.units import Unit
from streams.audit import AuditAction, AuditRecord, FieldWrite
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import SourceSystem, split_key
from streams.links import FieldSync, Link, LinkSide, link_id_for
from streams.work import WorkItem, link_route

__all__ = ["planned", "rechecks", "refusal", "settle", "synced_fields"]

HS = SourceSystem.HUBSPOT
DV = SourceSystem.DATAVERSE


def planned(state: PairState, plan: PairPlan) -> BatchResult:
    """What a plan counts for before anything is written: its skips and conflicts, and an echo when it
    writes nothing and moves no fingerprint of a linked pair."""
    counted = BatchResult()
    for skip in plan.skips:
        counted.skips[(skip.step, skip.reason)] += 1
    for conflict in plan.conflicts:
        counted.conflicts[(conflict.step, str(conflict.rule))] += 1
    if not plan.writes and state.link is not None and not _moved(state, plan):
        counted.echoes += 1
    return counted


def _moved(state: PairState, plan: PairPlan) -> bool:
    """Did the fingerprints move (a real change that needed no write) rather than an echo?"""
    link = state.link
    if link is None:
        return True
    for system, fps in plan.after.items():
        side = link.side(system).fields
        if any(side.get(k) is None or side[k].fingerprint != v for k, v in fps.items()):
            return True
    return False


def settle(
    unit: Unit,
    state: PairState,
    plan: PairPlan,
    outcomes: Mapping[SourceSystem, WriteOutcome],
    *,
    batch: Batch,
    now: datetime,
) -> BatchResult:
    """The pair's link once the plan's writes succeeded (none when the pair has no record on one side: a
    skipped first sync), an audit record per write, and the sync latency of each of its steps."""
    decided = BatchResult()
    ids = {
        system: (done.object_id if (done := outcomes.get(system)) else None) or unit.ids[system]
        for system in (HS, DV)
    }
    old = state.link
    sides: dict[SourceSystem, LinkSide] = {}
    for system, object_id in ids.items():
        if object_id is None:
            return decided
        prior = old.side(system) if old is not None else None
        record, done = state.record(system), outcomes.get(system)
        sides[system] = LinkSide(
            system=system,
            tenant=batch.tenants[system],
            object_type=unit.pair.object_on(system),
            object_id=object_id,
            fields=synced_fields(prior, plan.after.get(system, {}), now),
            version=(done.version if done is not None else None) or (record.version if record else None),
            modified_at=(done.modified_at if done is not None else None)
            or (record.modified_at if record else None),
            merged_ids=prior.merged_ids if prior is not None else (),
        )
    waiting = tuple(
        sorted({batch.ref(p.related_system, p.related_object, p.related_id).key for p in plan.pending})
    )
    link = _link(unit.link, old, sides, waiting, now)
    if link is not unit.link:
        decided.links.append((link.link_id, link))
    started = min(i.change.occurred_at for i in unit.items)
    for w in plan.writes:
        decided.audits.append(_audit(unit, link, w, now, dry_run=batch.dry_run))
        decided.latencies.extend((step, max(0.0, (now - started).total_seconds())) for step in w.steps)
    for skip in plan.skips:  # an owner left as it is is a decision an admin asks about: audited
        if skip.reason in OWNER_REASONS:
            why = f"{skip.reason} ({skip.field})"
            decided.audits.append(refusal(unit, skip.step, why, now, dry_run=batch.dry_run))
    return decided


def synced_fields(prior: LinkSide | None, after: Mapping[str, str], now: datetime) -> dict[str, FieldSync]:
    """A side's fields once the writes land (``after``: tracked field -> fingerprint): a field whose
    fingerprint did not move keeps its sync time."""
    return {
        prop: (
            prior.fields[prop]
            if prior is not None and prop in prior.fields and prior.fields[prop].fingerprint == fp
            else FieldSync(fingerprint=fp, synced_at=now)
        )
        for prop, fp in after.items()
    }


def _link(
    committed: Link | None,
    old: Link | None,
    sides: Mapping[SourceSystem, LinkSide],
    waiting: tuple[str, ...],
    now: datetime,
) -> Link:
    """The committed link when nothing changed, else the next revision of ``old`` (which may hold what an
    earlier, failed attempt sent: `SentValues.covering`), or a new link."""
    if (
        committed is not None
        and committed.hubspot == sides[HS]
        and committed.dataverse == sides[DV]
        and committed.waiting_for == waiting
    ):
        return committed
    return Link(
        link_id=old.link_id if old is not None else link_id_for(sides[HS].ref, sides[DV].ref),
        hubspot=sides[HS],
        dataverse=sides[DV],
        revision=(old.revision + 1) if old is not None else 1,
        created_at=old.created_at if old is not None else now,
        updated_at=now,
        waiting_for=waiting,
    )


def _audit(unit: Unit, link: Link, w: SideWrite, now: datetime, *, dry_run: bool) -> AuditRecord:
    return AuditRecord(
        step=",".join(w.steps),
        action=AuditAction.CREATE if w.kind is WriteKind.CREATE else AuditAction.UPDATE,
        link_id=link.link_id,
        source=link.side(w.system.other).ref,
        target=link.side(w.system).ref,
        fields=tuple(
            FieldWrite(field=d.target, source_field=d.source, old=d.old, new=d.new, rule=d.rule)
            for d in w.decisions
        ),
        source_event_ids=unit.event_ids,
        dry_run=dry_run,
        at=now,
    )


def refusal(unit: Unit, step: str, reason: str, now: datetime, *, dry_run: bool) -> AuditRecord:
    """The audit record of a unit the sync refuses to apply (an ambiguous match), or of a field it leaves
    as it is (an owner with no enabled counterpart)."""
    return AuditRecord(
        step=step,
        action=AuditAction.SKIP,
        source=unit.items[-1].change.ref,
        reason=reason,
        source_event_ids=unit.event_ids,
        dry_run=dry_run,
        at=now,
    )


def rechecks(batch: Batch, now: datetime) -> list[WorkItem]:
    """Pairs whose association waited for a record this batch linked are planned again; so are pairs this
    batch left waiting for a record linked meanwhile (by another replica)."""
    waiting: set[str] = set()
    for _, link in batch.result.links:
        if link is None:
            continue
        for side in (link.hubspot, link.dataverse):
            waiting |= batch.view.waiting_on(side.key)
        if any(batch.view.find(key) is not None for key in link.waiting_for):
            waiting.add(link.link_id)
    out: list[WorkItem] = []
    for link_id in sorted(waiting):
        link = batch.view.get(link_id)
        if link is not None:
            out.extend(_recheck(link, now))
    return out


def _recheck(link: Link, now: datetime) -> list[WorkItem]:
    """A change of the pair's record on each side whose association waits, routed by the link."""
    systems = {SourceSystem(split_key(key)[0]) for key in link.waiting_for}
    pair = Pair(hubspot=link.hubspot.object_type, dataverse=link.dataverse.object_type)
    return [
        WorkItem(
            pair=str(pair),
            route=link_route(link.link_id),
            change=ChangeEvent(
                source=system,
                tenant=link.side(system).tenant,
                object_type=link.side(system).object_type,
                object_id=link.side(system).object_id,
                operation=Operation.UPDATE,
                origin=Origin.RESYNC,
                source_event_type="association_recheck",
                occurred_at=now,
                received_at=now,
            ),
        )
        for system in sorted(systems)
    ]
