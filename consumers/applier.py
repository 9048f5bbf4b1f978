"""The applier: a batch of work items -> reads, plans, batched writes, link updates, audit records.

No Kafka here and no HTTP: it talks to the CRMs through `consumers.ports.CrmGateway` and returns what the
runtime must publish (links, audit, dead letters) in the same transaction as the consumed offsets.

One batch runs in passes. A *unit* is one pair's work in the batch: every change of a linked pair
coalesces into one unit (the current state of both records is read, so a burst of edits costs one read and
at most one write per side); an unlinked record is a unit of its own. Units that share a route (two new
records with one match key) run in successive passes, so the second sees the link the first made.
A Dataverse 412 (the record changed since it was read) re-reads and re-plans in the next pass.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consumers.config import COUNTERPART_ID, FORMATTED_VALUE, Pair, Step, SyncConfig, ValueType
from consumers.matching import match_key
from consumers.planner import (
    ASSOCIATION_PREFIX,
    MatchState,
    PairPlan,
    PairState,
    SideWrite,
    field_value,
    plan_pair,
    tracked_fields,
)
from consumers.ports import (
    MERGED_IDS,
    BatchRevokedError,
    CrmGateway,
    Record,
    WriteKind,
    WriteOp,
    WriteOutcome,
    merged_ids,
)
from consumers.values import canonical
from streams.audit import AuditAction, AuditRecord, FieldWrite
from streams.codec import Scalar
from streams.events import ChangeEvent, Merge, Operation, Origin
from streams.keys import RecordRef, SourceSystem, split_key
from streams.links import FieldSync, Link, LinkIndex, LinkSide, fingerprint, link_id_for
from streams.work import WorkItem, link_route

__all__ = ["Applier", "BatchResult", "Unit"]

log = logging.getLogger(__name__)

HS = SourceSystem.HUBSPOT
DV = SourceSystem.DATAVERSE
MAX_PASSES = 6
RECORD_ERROR_ATTEMPTS = 3
MAX_SENT = 100_000


@dataclass(slots=True)
class Unit:
    """One pair's work in a batch."""

    pair: Pair
    route: str
    items: list[WorkItem]
    ids: dict[SourceSystem, str | None]
    link: Link | None = None
    attempts: int = 0
    error: str | None = None
    failed_step: str | None = None

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.change.source_event_id for i in self.items if i.change.source_event_id))

    @property
    def trigger(self) -> SourceSystem:
        return self.items[-1].change.source


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

    def as_failed_unit(self) -> Unit:
        """For the dead letters, as any unit that kept failing."""
        ids: dict[SourceSystem, str | None] = {
            HS: self.link.hubspot.object_id,
            DV: self.link.dataverse.object_id,
        }
        return Unit(
            pair=self.pair, route=self.item.route, items=[self.item], ids=ids, link=self.link,
            attempts=self.attempts, error=self.error, failed_step=self.step,
        )  # fmt: skip


@dataclass(slots=True)
class BatchResult:
    links: list[tuple[str, Link | None]] = field(default_factory=list)
    audits: list[AuditRecord] = field(default_factory=list)
    rechecks: list[WorkItem] = field(default_factory=list)
    """Pairs to plan again now that a record their association waited for is linked (to the work topic)."""
    failed: list[Unit] = field(default_factory=list)
    """Units that hit a record error on every attempt: their items go to dead letters."""
    writes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    """(target system, object, operation, outcome) -> count."""
    skips: Counter[tuple[str, str]] = field(default_factory=Counter)
    conflicts: Counter[tuple[str, str]] = field(default_factory=Counter)
    echoes: int = 0
    api_writes: int = 0
    latencies: list[tuple[str, float]] = field(default_factory=list)
    """(step, seconds from the source change to the write acknowledged)."""

    def merge(self, other: BatchResult) -> None:
        self.links.extend(other.links)
        self.audits.extend(other.audits)
        self.rechecks.extend(other.rechecks)
        self.failed.extend(other.failed)
        self.writes.update(other.writes)
        self.skips.update(other.skips)
        self.conflicts.update(other.conflicts)
        self.echoes += other.echoes
        self.api_writes += other.api_writes
        self.latencies.extend(other.latencies)

    def commit(self, index: LinkIndex) -> None:
        """Once published: the batch's link changes join the committed view."""
        for link_id, link in self.links:
            index.apply(link_id, link)


class StaleLinkError(RuntimeError):
    """A link built on an older copy than the batch's current one: a bug, never published (the apply loop
    retries the batch, then its items one by one)."""


class StagedLinks:
    """The link index as a batch sees it: the committed view plus the batch's own, not yet published, link
    changes. The committed view moves only once the batch's transaction is committed (`BatchResult.links`),
    so a batch that fails half-way leaves no trace in it and its retry publishes every link it makes."""

    def __init__(self, base: LinkIndex) -> None:
        self.base = base
        self.staged = LinkIndex()
        self.removed: set[str] = set()

    def find(self, record: RecordRef) -> Link | None:
        return self.find_key(record.key)

    def find_key(self, key: str) -> Link | None:
        link = self.staged.find(key)
        if link is not None:
            return link
        link = self.base.find(key)
        if link is None or link.link_id in self.removed or self.staged.get(link.link_id) is not None:
            return None  # tombstoned, or re-pointed (a merge) within this batch
        return link

    def get(self, link_id: str) -> Link | None:
        if link_id in self.removed:
            return None
        return self.staged.get(link_id) or self.base.get(link_id)

    def waiting_on(self, key: str) -> set[str]:
        """The links (as this batch leaves them) waiting for this record to be linked."""
        base = {i for i in self.base.waiting_on(key) if i not in self.removed and self.staged.get(i) is None}
        return base | self.staged.waiting_on(key)

    def apply(self, link_id: str, link: Link | None) -> None:
        """Stage a link change. A link replaces the current one only at a higher revision: two values at
        one revision are two writers of one pair (a copy taken before another change of the batch moved
        the link), and the compacted topic would keep whichever came last."""
        if link is None:
            self.removed.add(link_id)
        else:
            current = self.get(link_id)
            if current is not None and link.revision <= current.revision:
                raise StaleLinkError(
                    f"link {link_id}: revision {link.revision} would replace revision {current.revision}"
                )
            self.removed.discard(link_id)
        self.staged.apply(link_id, link)


class Applier:
    def __init__(
        self,
        config: SyncConfig,
        gateways: Mapping[SourceSystem, CrmGateway],
        index: LinkIndex,
        *,
        dry_run: bool = False,
        clock: type[datetime] = datetime,
    ) -> None:
        self.config = config
        self.gateways = gateways
        self.index = index
        self.view = StagedLinks(index)
        self._tracked_cache: dict[Pair, dict[SourceSystem, dict[str, ValueType]]] = {}
        self._lookup_cache: dict[Pair, list[tuple[str, SourceSystem, str]]] = {}
        self.dry_run = dry_run
        self._owned: Callable[[], bool] = _always
        self._clock = clock
        self._sent: dict[str, dict[str, str]] = {}
        """Record key -> fingerprints of the values an update was sent to set, until a committed link covers
        the record. A batch that fails after some of its writes landed (a 429 on the next call) is read
        again; a value that is exactly what was sent is this daemon's write, not a user's edit, else the
        retry would take it for the newer change and let it overwrite the other side's newer one."""

    def commit(self, result: BatchResult) -> None:
        """Once published: the batch's link changes join the committed view; what they cover is no
        longer pending."""
        result.commit(self.index)
        for _, link in result.links:
            if link is not None:
                self._sent.pop(link.hubspot.key, None)
                self._sent.pop(link.dataverse.key, None)

    def _now(self) -> datetime:
        return self._clock.now(UTC)

    def tenant(self, system: SourceSystem) -> str:
        return self.gateways[system].tenant

    def ref(self, system: SourceSystem, object_type: str, object_id: str) -> RecordRef:
        return RecordRef(
            system=system, tenant=self.tenant(system), object_type=object_type, object_id=object_id
        )

    def counterpart(self, system: SourceSystem, object_type: str, object_id: str) -> str | None:
        link = self.view.find(self.ref(system, object_type, object_id))
        return None if link is None else link.side(system.other).object_id

    # -- units ---------------------------------------------------------------------------------------

    def units(
        self, items: Sequence[WorkItem], result: BatchResult
    ) -> tuple[list[list[Unit]], list[Deletion]]:
        """Group items into units, and units into passes (units of one route run one per pass); and the
        deletions to propagate, one unit each."""
        by_key: dict[tuple[str, str], Unit] = {}
        per_route: dict[tuple[str, str], list[Unit]] = {}
        deletions: list[Deletion] = []
        for item in self._changes(items, result, deletions):
            pair = _pair(item.pair)
            change = item.change
            link = self.view.find(change.ref)
            if link is not None and self._nothing_new(item, pair, link):
                result.echoes += 1  # our own write coming back, or a change to nothing the pair maps
                continue
            key = (item.pair, f"link:{link.link_id}" if link else change.ref.key)
            unit = by_key.get(key)
            if unit is None:
                ids: dict[SourceSystem, str | None] = {HS: None, DV: None}
                if link is not None:
                    ids = {HS: link.hubspot.object_id, DV: link.dataverse.object_id}
                else:
                    ids[change.source] = change.object_id
                unit = Unit(pair=pair, route=item.route, items=[], ids=ids, link=link)
                by_key[key] = unit
                per_route.setdefault((item.pair, item.route), []).append(unit)
            unit.items.append(item)
        for group in per_route.values():
            _pair_up(group)
        passes: list[list[Unit]] = []
        for group in per_route.values():
            for n, unit in enumerate(group):
                while len(passes) <= n:
                    passes.append([])
                passes[n].append(unit)
        return passes, deletions

    def _changes(
        self, items: Sequence[WorkItem], result: BatchResult, deletions: list[Deletion]
    ) -> Iterator[WorkItem]:
        """The items that change records; deletes, merges and privacy deletions are dealt with on the
        way (`_special`), bar a merge that needs its survivor read."""
        special = {Operation.PRIVACY_DELETION, Operation.MERGE, Operation.DELETE}
        for item in items:
            if item.change.operation not in special:
                yield item
            elif (deferred := self._special(item, _pair(item.pair), result, deletions)) is not None:
                yield deferred

    def _lookup_fields(self, pair: Pair) -> list[tuple[str, SourceSystem, str]]:
        """(lookup kind, source system, source field) of a pair's fields that need a lookup read (a
        formatted value is read as such), worked out once per pair."""
        found = self._lookup_cache.get(pair)
        if found is None:
            found = self._lookup_cache[pair] = [
                (f.lookup, step.source.system, f.source)
                for step in self.config.steps_for(pair)
                for f in step.active_fields()
                if f.lookup is not None and f.lookup != FORMATTED_VALUE
            ]
        return found

    def _tracked(self, pair: Pair) -> dict[SourceSystem, dict[str, ValueType]]:
        """`tracked_fields` of a pair, worked out once per pair rather than per change and per read."""
        tracked = self._tracked_cache.get(pair)
        if tracked is None:
            tracked = self._tracked_cache[pair] = tracked_fields(self.config, pair)
        return tracked

    def _nothing_new(self, item: WorkItem, pair: Pair, link: Link) -> bool:
        """Can this change of a linked record be dropped before any read? Only when what it carries
        settles it: every mapped field it holds matches the link's fingerprint (an echo of our write, or a
        reconciler/poller re-read), and it holds them all (a full record) or touched only those
        (a property webhook). Creations, associations, merges and the like always go through."""
        change = item.change
        if change.operation not in {Operation.UPDATE, Operation.UPSERT}:
            return False
        tracked = self._tracked(pair)[change.source]
        synced = link.side(change.source).fields
        if change.record is not None:
            carried = _carried(change, tracked)
            if carried is None:
                return False
            values: Mapping[str, Scalar] = carried
            wanted = list(carried)
        else:
            values = change.changed_properties
            if not values:
                return False
            wanted = [p for p in values if p in tracked]
        for prop in wanted:
            fp = synced.get(prop)
            if fp is None or fp.fingerprint != fingerprint(
                canonical(values.get(prop), tracked[prop], change.source)
            ):
                return False
        return True

    # -- the batch -----------------------------------------------------------------------------------

    async def apply(
        self, items: Sequence[WorkItem], *, owned: Callable[[], bool] | None = None
    ) -> BatchResult:
        """Apply a batch. Raises `CrmUnavailableError` (nothing committed: the runtime retries the batch),
        and `BatchRevokedError` when ``owned`` (asked before every gateway write) says the batch's
        partitions have moved to another replica."""
        self._owned = owned or _always
        result = BatchResult()
        self.view = StagedLinks(self.index)
        passes, deletions = self.units(items, result)
        gone = await self._delete(deletions, result)
        # Changes to a pair whose record was just deleted are moot: neither side is there to write.
        passes = [[u for u in p if u.link is None or u.link.link_id not in gone] for p in passes]
        queue: list[Unit] = []
        rounds = 0
        while passes or queue:
            rounds += 1
            current = queue + (passes.pop(0) if passes else [])
            queue = []
            if rounds > MAX_PASSES + len(items):
                result.failed.extend(current)
                break
            retry = await self._pass(self._current(current), result)
            for unit in retry:
                unit.attempts += 1
                if unit.error is not None and unit.attempts >= RECORD_ERROR_ATTEMPTS:
                    result.failed.append(unit)
                else:
                    queue.append(unit)
        self._rechecks(result)
        return result

    def _current(self, units: list[Unit]) -> list[Unit]:
        """The units of a pass on their links as the batch has staged them so far, one unit per link
        (two that now share one, such as a survivor's change and a change of the pair a merge moved to
        it, are one: one read, one plan, one link write)."""
        out: list[Unit] = []
        by_link: dict[str, Unit] = {}
        for unit in units:
            if not self._current_link(unit):
                continue
            if unit.link is None:
                out.append(unit)
                continue
            first = by_link.setdefault(unit.link.link_id, unit)
            if first is unit:
                out.append(unit)
            else:
                first.items.extend(unit.items)
                first.items.sort(key=lambda i: i.change.occurred_at)
        return out

    def _current_link(self, unit: Unit) -> bool:
        """Bring a unit's link up to what the batch has staged so far, before it is read and planned: a
        merge earlier in the batch may have moved it to the survivor, an earlier pass may have linked the
        record (same route). False when the pair's link is gone (deleted or erased in this batch)."""
        if unit.link is not None:
            found = self.view.get(unit.link.link_id)
            if found is None:
                return False
        else:
            found = next(
                (
                    link
                    for system in (HS, DV)
                    if (object_id := unit.ids[system]) is not None
                    and (link := self.view.find(self.ref(system, unit.pair.object_on(system), object_id)))
                    is not None
                ),
                None,
            )
            if found is None:
                return True
        unit.link = found
        unit.ids = {HS: found.hubspot.object_id, DV: found.dataverse.object_id}
        return True

    def _linked_meanwhile(self, unit: Unit) -> bool:
        """Has another replica linked this unlinked unit's record since the batch began (its link reached
        the view, which is tailed throughout)? The unit then takes that link."""
        if unit.link is not None:
            return False
        self._current_link(unit)
        return unit.link is not None

    def _rechecks(self, result: BatchResult) -> None:
        """Pairs whose association waited for a record this batch linked are planned again; so are pairs
        this batch left waiting for a record linked meanwhile (by another replica)."""
        waiting: set[str] = set()
        for _, link in result.links:
            if link is None:
                continue
            for side in (link.hubspot, link.dataverse):
                waiting |= self.view.waiting_on(side.key)
            if any(self.view.find_key(key) is not None for key in link.waiting_for):
                waiting.add(link.link_id)
        for link_id in sorted(waiting):
            link = self.view.get(link_id)
            if link is not None:
                result.rechecks.extend(self._recheck(link))

    def _recheck(self, link: Link) -> list[WorkItem]:
        """A change of the pair's record on each side whose association waits, routed by the link."""
        systems = {SourceSystem(split_key(key)[0]) for key in link.waiting_for}
        pair = Pair(hubspot=link.hubspot.object_type, dataverse=link.dataverse.object_type)
        now = self._now()
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

    async def _pass(self, units: list[Unit], result: BatchResult) -> list[Unit]:
        states, relinked = await self._read(units, result)
        lookups = await self._field_lookups([state for _, state in states])
        plans: list[tuple[Unit, PairState, PairPlan]] = []
        for unit, state in states:
            plan = plan_pair(self.config, state, resolve=self.counterpart, now=self._now(), lookups=lookups)
            for skip in plan.skips:
                result.skips[(skip.step, skip.reason)] += 1
            for conflict in plan.conflicts:
                result.conflicts[(conflict.step, str(conflict.rule))] += 1
            if not plan.writes and state.link is not None and not _moved(state, plan):
                result.echoes += 1
            plans.append((unit, state, plan))
        outcomes = await self._write([(unit, plan) for unit, _, plan in plans], result)
        retry: list[Unit] = []
        for unit, state, plan in plans:
            if unit.link is not None and _revision(self.view.get(unit.link.link_id)) != unit.link.revision:
                retry.append(unit)  # moved in this pass (a merge found in a read): plan again on the new link
                continue
            mine = {w.system: outcomes[(id(unit), w.system)] for w in plan.writes}
            if any(o.conflict for o in mine.values()):
                retry.append(unit)
                continue
            errors = [o.error or "rejected" for o in mine.values() if not o.ok]
            if errors:
                unit.error = "; ".join(errors)
                unit.failed_step = plan.writes[0].steps[0] if plan.writes else None
                retry.append(unit)
                continue
            self._settle(unit, state, plan, mine, result)
        return retry + relinked

    async def _field_lookups(self, states: list[PairState]) -> dict[str, dict[str, str]]:
        """What the fields with a lookup need for these records (owner ids -> emails), asked of the CRM
        the values come from, once per kind and system for the whole pass."""
        wanted: dict[tuple[str, SourceSystem], set[str]] = {}
        for state in states:
            for kind, system, prop in self._lookup_fields(state.pair):
                record = state.record(system)
                value = None if record is None else record.values.get(prop)
                if isinstance(value, str | int) and str(value).strip():
                    wanted.setdefault((kind, system), set()).add(str(value).strip())
        found: dict[str, dict[str, str]] = {}
        for (kind, system), keys in wanted.items():
            found.setdefault(kind, {}).update(await self.gateways[system].lookup(kind, sorted(keys)))
        return found

    # -- reads ---------------------------------------------------------------------------------------

    async def _read(
        self, units: list[Unit], result: BatchResult
    ) -> tuple[list[tuple[Unit, PairState]], list[Unit]]:
        """The pairs' states; and the units relinked (the next pass plans them with the link): by a merge
        found in their HubSpot record, or by another replica whose link reached the view while this pass
        read (the view's tail runs between any two awaits)."""
        fetched = await self._fetch(units)

        def record(unit: Unit, system: SourceSystem) -> Record | None:
            object_id = unit.ids[system]
            if object_id is None:
                return None
            return fetched[(system, unit.pair.object_on(system))].get(object_id)

        relinked = [u for u in units if self._merge_survivor(u, record(u, HS), result)]
        units = [u for u in units if u not in relinked]
        matches = await self._match(units, record)
        # A record linked meanwhile: its counterpart now looks "linked to another record" to the match, so
        # planning it as unlinked would create a second counterpart.
        late = [u for u in units if self._linked_meanwhile(u)]
        relinked += late
        states: list[tuple[Unit, PairState]] = []
        for unit in (u for u in units if u not in late):
            hs, dv = record(unit, HS), record(unit, DV)
            match = MatchState()
            candidates = matches.get(id(unit), [])
            if len(candidates) == 1:
                other = candidates[0]
                if unit.ids[HS] is None:
                    hs, unit.ids[HS] = other, other.object_id
                else:
                    dv, unit.ids[DV] = other, other.object_id
            elif len(candidates) > 1:
                match = MatchState(ambiguous=len(candidates))
                result.skips[(self._step_name(unit), "ambiguous_match")] += 1
                result.audits.append(self._refusal(unit, f"ambiguous_match: {len(candidates)} candidates"))
            if hs is None and dv is None:
                result.skips[(self._step_name(unit), "source_record_gone")] += 1
                continue
            link = self._with_sent(unit.pair, unit.link, {HS: hs, DV: dv}) if unit.link else None
            states.append((unit, PairState(unit.pair, hs, dv, link, match)))
        return states, relinked

    def _merge_survivor(self, unit: Unit, hs: Record | None, result: BatchResult) -> bool:
        """A merge whose webhook is lost or late, found in the HubSpot record read: an unlinked record
        whose ``hs_merged_object_ids`` names linked records, or a linked id that now answers with the
        merge's record (new id). The merge is applied now (the link moves to the survivor) and the unit
        takes the link, so the survivor's changes are neither taken for a new contact nor lost."""
        if hs is None or (hs.object_id == unit.ids[HS] and unit.link is not None):
            return False
        link = self._lost_merge(unit.items[-1], unit.pair, hs, result)
        if link is None:
            return False
        unit.link, unit.ids = link, {HS: link.hubspot.object_id, DV: link.dataverse.object_id}
        return True

    def _lost_merge(self, item: WorkItem, pair: Pair, survivor: Record, result: BatchResult) -> Link | None:
        """Apply the merge a HubSpot survivor's record tells of (its ``hs_merged_object_ids`` names linked
        records) when no merge event did: the survivor's link, or None when it names no linked record."""
        ids = merged_ids(survivor.values, survivor.object_id)
        if not any(self.view.find(self.ref(HS, survivor.object_type, i)) for i in ids):
            return None
        merge = Merge(
            primary_object_id=ids[0], merged_object_ids=tuple(ids[1:]), new_object_id=survivor.object_id
        )
        self._merge(item, merge, pair, result, self._now(), survivor_record=survivor)
        return self.view.find(self.ref(HS, survivor.object_type, survivor.object_id))

    def _with_sent(self, pair: Pair, link: Link, records: Mapping[SourceSystem, Record | None]) -> Link:
        """The link as it would be had the writes of an earlier, failed attempt been committed: a field
        that holds exactly the value sent to it counts as synced."""
        tracked, now = self._tracked(pair), self._now()
        sides: dict[SourceSystem, LinkSide] = {}
        for system in (HS, DV):
            side, record = link.side(system), records[system]
            sent = self._sent.get(side.key)
            if not sent or record is None:
                continue
            fields = dict(side.fields)
            for prop, fp in sent.items():
                value_type = tracked[system].get(prop)
                if value_type is not None and fp == fingerprint(
                    canonical(field_value(record, prop), value_type, system)
                ):
                    fields[prop] = FieldSync(fingerprint=fp, synced_at=now)
            sides[system] = side.model_copy(update={"fields": fields})
        if not sides:
            return link
        return link.model_copy(
            update={"hubspot": sides.get(HS, link.hubspot), "dataverse": sides.get(DV, link.dataverse)}
        )

    async def _fetch(self, units: list[Unit]) -> dict[tuple[SourceSystem, str], dict[str, Record]]:
        """The current state of every record the units name: one batched read per system and object."""
        wanted: dict[tuple[SourceSystem, str], set[str]] = {}
        for unit in units:
            for system in (HS, DV):
                object_id = unit.ids[system]
                if object_id is not None:
                    wanted.setdefault((system, unit.pair.object_on(system)), set()).add(object_id)
        fetched: dict[tuple[SourceSystem, str], dict[str, Record]] = {}
        for (system, object_type), ids in wanted.items():
            props, assocs = self._fields(system, object_type)
            fetched[(system, object_type)] = await self.gateways[system].read(
                object_type, sorted(ids), fields=props, associations=assocs
            )
        return fetched

    def _lookups(
        self, units: list[Unit], record: Callable[[Unit, SourceSystem], Record | None]
    ) -> dict[tuple[SourceSystem, str, Step], dict[str, list[tuple[Unit, str]]]]:
        """Per (system, object, step): match value to look up -> the units asking, with their match key."""
        lookups: dict[tuple[SourceSystem, str, Step], dict[str, list[tuple[Unit, str]]]] = {}
        for unit in units:
            if unit.link is not None or (unit.ids[HS] is not None and unit.ids[DV] is not None):
                continue  # linked, or paired within the batch
            have = HS if unit.ids[HS] is not None else DV
            rec = record(unit, have)
            step = self._creating_step(unit.pair, have)
            if rec is None or step is None:
                continue
            key = match_key(step.match, rec.values, side="source")
            raw = rec.values.get(step.match.source)
            if key is not None and isinstance(raw, str):
                lookup = (have.other, unit.pair.object_on(have.other), step)
                # The CRMs compare exactly (bar case): ask for the value as written and with its spacing
                # normalized; the match key then decides.
                for value in dict.fromkeys((raw.strip(), " ".join(raw.split()))):
                    lookups.setdefault(lookup, {}).setdefault(value, []).append((unit, key))
        return lookups

    async def _match(
        self, units: list[Unit], record: Callable[[Unit, SourceSystem], Record | None]
    ) -> dict[int, list[Record]]:
        """First sync: look each unlinked unit's missing side up by the match key of the side it has.

        Candidates already linked to another record are not candidates."""
        lookups = self._lookups(units, record)
        matches: dict[int, list[Record]] = {}
        for (system, object_type, step), by_value in lookups.items():
            props, assocs = self._fields(system, object_type)
            field_name = step.match.target
            found = await self.gateways[system].find(
                object_type, field_name, sorted(by_value), fields=sorted({*props, field_name})
            )
            for value, group in by_value.items():
                for unit, key in group:
                    known = {r.object_id for r in matches.get(id(unit), [])}
                    matches[id(unit)] = [
                        *matches.get(id(unit), []),
                        *(
                            r
                            for r in found.get(value, [])
                            if r.object_id not in known
                            and match_key(step.match, r.values, side="target") == key
                            and self.view.find(self.ref(system, object_type, r.object_id)) is None
                        ),
                    ]
            candidate_ids = sorted({r.object_id for rs in matches.values() for r in rs})
            if assocs and candidate_ids:
                # A match lookup returns no associations: read the candidates in full.
                full = await self.gateways[system].read(
                    object_type, candidate_ids, fields=props, associations=assocs
                )
                for uid, candidates in matches.items():
                    matches[uid] = [full.get(r.object_id, r) for r in candidates]
        return matches

    def _fields(self, system: SourceSystem, object_type: str) -> tuple[list[str], list[str]]:
        # The counterpart's id is read (the planner stamps it where it is missing), not tracked.
        props: set[str] = {COUNTERPART_ID[system], *((MERGED_IDS,) if system is HS else ())}
        assocs: set[str] = set()
        for pair in self.config.pairs_of(system, object_type):
            for name in self._tracked(pair)[system]:
                if name.startswith(ASSOCIATION_PREFIX):
                    assocs.add(name[len(ASSOCIATION_PREFIX) :])
                else:
                    props.add(name)
            for step in self.config.steps_for(pair):
                if step.source.system is system:
                    props.add(step.match.source)
                    if step.filter is not None:
                        if step.filter.flag:
                            props.add(step.filter.flag)
                        props.update(c.field for c in step.filter.criteria)
                else:
                    props.add(step.match.target)
        return sorted(props), sorted(assocs)

    def _creating_step(self, pair: Pair, have: SourceSystem) -> Step | None:
        return next((s for s in self.config.steps_for(pair) if s.source.system is have), None)

    def _step_name(self, unit: Unit) -> str:
        step = self._creating_step(unit.pair, unit.trigger)
        return step.name if step else str(unit.pair)

    # -- writes --------------------------------------------------------------------------------------

    async def _write(
        self, plans: list[tuple[Unit, PairPlan]], result: BatchResult
    ) -> dict[tuple[int, SourceSystem], WriteOutcome]:
        ops: dict[SourceSystem, list[WriteOp]] = {HS: [], DV: []}
        for unit, plan in plans:
            for w in plan.writes:
                if w.kind is WriteKind.UPDATE and w.object_id and not self.dry_run:
                    written = set(w.values) | {ASSOCIATION_PREFIX + key for key in w.associations}
                    after = plan.after.get(w.system, {})
                    self._sent.setdefault(self.ref(w.system, w.object_type, w.object_id).key, {}).update(
                        {prop: fp for prop, fp in after.items() if prop in written}
                    )
                ops[w.system].append(
                    WriteOp(
                        ref=f"{id(unit)}",
                        kind=w.kind,
                        object_type=w.object_type,
                        object_id=w.object_id,
                        values=w.values,
                        if_match=w.if_match,
                        associations=w.associations,
                        origin_id=unit.ids.get(w.system.other) if w.kind is WriteKind.CREATE else None,
                    )
                )
        while len(self._sent) > MAX_SENT:  # records whose link never came (deleted meanwhile): oldest go
            del self._sent[next(iter(self._sent))]
        out: dict[tuple[int, SourceSystem], WriteOutcome] = {}
        for system, batch in ops.items():
            for op, outcome in zip(batch, await self._send(system, batch, result), strict=True):
                out[(int(op.ref), system)] = outcome
        return out

    async def _send(
        self, system: SourceSystem, ops: list[WriteOp], result: BatchResult
    ) -> list[WriteOutcome]:
        """One gateway call for ``ops`` (none in a dry run), counted in ``result``."""
        if not ops:
            return []
        if self.dry_run:
            outcomes = [
                WriteOutcome(ref=op.ref, ok=True, object_id=op.object_id or f"dry-run-{op.ref}") for op in ops
            ]
        else:
            if not self._owned():
                raise BatchRevokedError(f"{len(ops)} {system} write(s) not sent: the partitions moved")
            outcomes = await self.gateways[system].write(ops)
            result.api_writes += len(ops)
        for op, outcome in zip(ops, outcomes, strict=True):
            label = "ok" if outcome.ok else ("conflict" if outcome.conflict else "error")
            result.writes[(str(system), op.object_type, str(op.kind), label)] += 1
        return outcomes

    # -- links and audit -----------------------------------------------------------------------------

    def _settle(
        self,
        unit: Unit,
        state: PairState,
        plan: PairPlan,
        outcomes: Mapping[SourceSystem, WriteOutcome],
        result: BatchResult,
    ) -> None:
        now = self._now()
        ids = dict(unit.ids)
        for system, outcome in outcomes.items():
            if outcome.object_id:
                ids[system] = outcome.object_id
        if ids[HS] is None or ids[DV] is None:
            return  # nothing to link (a skipped first sync)
        old = state.link
        sides: dict[SourceSystem, LinkSide] = {}
        for system in (HS, DV):
            record = state.record(system)
            done = outcomes.get(system)
            prior = old.side(system) if old is not None else None
            fields = {
                prop: (
                    prior.fields[prop]
                    if prior is not None and prop in prior.fields and prior.fields[prop].fingerprint == fp
                    else FieldSync(fingerprint=fp, synced_at=now)
                )
                for prop, fp in plan.after.get(system, {}).items()
            }
            version = (done.version if done is not None and done.version else None) or (
                record.version if record is not None else None
            )
            modified = (done.modified_at if done is not None else None) or (
                record.modified_at if record is not None else None
            )
            sides[system] = LinkSide(
                system=system,
                tenant=self.tenant(system),
                object_type=unit.pair.object_on(system),
                object_id=str(ids[system]),
                fields=fields,
                version=version,
                modified_at=modified,
                merged_ids=prior.merged_ids if prior is not None else (),
            )
        link_id = old.link_id if old is not None else link_id_for(sides[HS].ref, sides[DV].ref)
        waiting = tuple(
            sorted({self.ref(p.related_system, p.related_object, p.related_id).key for p in plan.pending})
        )
        committed = unit.link  # ``old`` may hold what an earlier, failed attempt sent (`_with_sent`)
        if (
            committed is not None
            and committed.hubspot == sides[HS]
            and committed.dataverse == sides[DV]
            and committed.waiting_for == waiting
        ):
            link = committed
        else:
            link = Link(
                link_id=link_id,
                hubspot=sides[HS],
                dataverse=sides[DV],
                revision=(old.revision + 1) if old is not None else 1,
                created_at=old.created_at if old is not None else now,
                updated_at=now,
                waiting_for=waiting,
            )
            self.view.apply(link_id, link)
            if not self.dry_run:
                result.links.append((link_id, link))
        for w in plan.writes:
            result.audits.append(self._audit(unit, link, w, now))
            started = min(i.change.occurred_at for i in unit.items)
            for step in w.steps:
                result.latencies.append((step, max(0.0, (now - started).total_seconds())))

    def _audit(self, unit: Unit, link: Link, w: SideWrite, now: datetime) -> AuditRecord:
        target = link.side(w.system).ref
        source = link.side(w.system.other).ref
        return AuditRecord(
            step=",".join(w.steps),
            action=AuditAction.CREATE if w.kind is WriteKind.CREATE else AuditAction.UPDATE,
            link_id=link.link_id,
            source=source,
            target=target,
            fields=tuple(
                FieldWrite(field=d.target, source_field=d.source, old=d.old, new=d.new, rule=d.rule)
                for d in w.decisions
            ),
            source_event_ids=unit.event_ids,
            dry_run=self.dry_run,
            at=now,
        )

    def _refusal(self, unit: Unit, reason: str) -> AuditRecord:
        change = unit.items[-1].change
        return AuditRecord(
            step=self._step_name(unit),
            action=AuditAction.SKIP,
            source=change.ref,
            reason=reason,
            source_event_ids=unit.event_ids,
            dry_run=self.dry_run,
            at=self._now(),
        )

    # -- deletes, merges, privacy --------------------------------------------------------------------

    def _special(
        self, item: WorkItem, pair: Pair, result: BatchResult, deletions: list[Deletion]
    ) -> WorkItem | None:
        """Merges and privacy deletions act on the link at once; a delete to propagate joins
        ``deletions`` for `_delete` (the counterpart is deleted first, the link tombstoned once it is).

        A merge the event alone cannot settle comes back as a change of the survivor, to be read."""
        change = item.change
        now = self._now()
        if change.operation is Operation.MERGE and change.merge is not None:
            if self._merge(item, change.merge, pair, result, now):
                return None
            survivor = change.model_copy(
                update={
                    "object_id": change.merge.surviving_id,
                    "operation": Operation.UPDATE,
                    "merge": None,
                    "record": None,
                    "changed_properties": {},
                }
            )
            return item.model_copy(update={"change": survivor})
        link = self.view.find(change.ref)
        if link is None and change.operation is Operation.DELETE and change.source is HS:
            # The survivor of a merge whose webhook was lost, deleted before any change of it was synced:
            # its archived record (read before routing) names the merged ids the pair's link holds.
            archived = Record(change.object_type, change.object_id, dict(change.changed_properties))
            link = self._lost_merge(item, pair, archived, result)
        if change.operation is Operation.PRIVACY_DELETION:
            if link is not None:
                self.view.apply(link.link_id, None)
                result.links.append((link.link_id, None))
            result.audits.append(
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
            return None
        # A delete: propagated only when a step of this direction says so. The link stays otherwise: the
        # counterpart is not re-created from the surviving side (skipped as ``counterpart_deleted``).
        step = next(
            (
                s
                for s in self.config.steps_for(pair)
                if s.source.system is change.source and s.deletes == "propagate"
            ),
            None,
        )
        if link is None:
            result.skips[(str(pair), "delete_of_unlinked")] += 1  # never synced, or our own delete's echo
        elif step is None:
            result.skips[(str(pair), "delete_not_propagated")] += 1
        else:
            deletions.append(Deletion(item=item, pair=pair, link=link, step=step.name))
        return None

    async def _delete(self, deletions: list[Deletion], result: BatchResult) -> set[str]:
        """Delete each counterpart (batched per system; one already gone counts as deleted), then tombstone
        the link. A record error is retried, then dead-lettered like any other; a system error raises and
        the batch is retried. Returns the ids of the links tombstoned."""
        gone: set[str] = set()
        todo = deletions
        while todo:
            per_system: dict[SourceSystem, list[Deletion]] = {HS: [], DV: []}
            for deletion in todo:
                per_system[deletion.target.system].append(deletion)
            todo = []
            for system, batch in per_system.items():
                ops = [d.op(str(n)) for n, d in enumerate(batch)]
                for deletion, outcome in zip(batch, await self._send(system, ops, result), strict=True):
                    if outcome.ok:
                        gone.add(self._deleted(deletion, result))
                        continue
                    deletion.attempts += 1
                    deletion.error = outcome.error or "rejected"
                    if deletion.attempts < RECORD_ERROR_ATTEMPTS:
                        todo.append(deletion)
                    else:
                        result.failed.append(deletion.as_failed_unit())
        return gone

    def _deleted(self, deletion: Deletion, result: BatchResult) -> str:
        link, change, now = deletion.link, deletion.item.change, self._now()
        if not self.dry_run:
            self.view.apply(link.link_id, None)
            result.links.append((link.link_id, None))
        result.audits.append(
            AuditRecord(
                step=deletion.step,
                action=AuditAction.DELETE,
                link_id=link.link_id,
                source=change.ref,
                target=deletion.target.ref,
                reason="source_deleted",
                source_event_ids=(change.source_event_id,) if change.source_event_id else (),
                dry_run=self.dry_run,
                at=now,
            )
        )
        result.latencies.append((deletion.step, max(0.0, (now - change.occurred_at).total_seconds())))
        return link.link_id

    def _merge(
        self,
        item: WorkItem,
        merge: Merge,
        pair: Pair,
        result: BatchResult,
        now: datetime,
        *,
        survivor_record: Record | None = None,
    ) -> bool:
        """The pair of the merge's primary record continues with the survivor; the other pairs among the
        merged records are kept for review. False when a merge event cannot tell which pair that is: its
        primary is itself the survivor of an earlier merge not applied yet (its webhook lost or late), so
        the survivor must be read (`_merge_survivor`). A merge older than one already applied is a no-op."""
        change = item.change
        survivor = merge.surviving_id
        ids = [merge.primary_object_id, *merge.merged_object_ids]
        links = {
            link.link_id: link
            for link in (self.view.find(self.ref(HS, change.object_type, i)) for i in ids)
            if link is not None
        }
        if not links:
            return True
        if survivor_record is None:
            keep = self.view.find(self.ref(HS, change.object_type, merge.primary_object_id))
            if keep is None:
                return False
        else:
            keep = self._continued(pair, list(links.values()), survivor_record)
        if survivor in keep.hubspot.merged_ids:
            return True  # a late event of a merge a later one already covered
        for other in links.values():
            if other.link_id != keep.link_id:
                result.skips[(str(pair), "merge_conflict")] += 1
                result.audits.append(
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
        merged = tuple(dict.fromkeys([*keep.hubspot.merged_ids, *(i for i in ids if i != survivor)]))
        side = keep.hubspot.model_copy(update={"object_id": survivor, "merged_ids": merged})
        link = keep.model_copy(update={"hubspot": side, "revision": keep.revision + 1, "updated_at": now})
        self.view.apply(link.link_id, link)
        result.links.append((link.link_id, link))
        return True

    def _continued(self, pair: Pair, links: list[Link], survivor: Record) -> Link:
        """Which of the merged records' pairs the survivor continues, known from its record alone: the one
        last synced with the survivor's match value (HubSpot keeps the primary's email, or name), else the
        first."""
        tracked = self._tracked(pair)[HS]
        for step in self.config.steps_for(pair):
            prop = step.match.source if step.source.system is HS else step.match.target
            if (value_type := tracked.get(prop)) is None:
                continue
            wanted = fingerprint(canonical(survivor.values.get(prop), value_type, HS))
            for link in links:
                synced = link.hubspot.fields.get(prop)
                if synced is not None and synced.fingerprint == wanted:
                    return link
        return links[0]


def _carried(change: ChangeEvent, tracked: Mapping[str, ValueType]) -> dict[str, Scalar] | None:
    """The tracked values a full record carries, or None when it lacks one (then only a read can tell).

    A Dataverse row carries its lookups as ``_<column>_value`` (the related record's id): the association
    ``@parentcustomerid:account`` is compared by that id, so a change of nothing but the parent account is
    a change. A HubSpot record carries no associations: their changes come as association events."""
    record = change.record or {}
    out: dict[str, Scalar] = {}
    for prop in tracked:
        if not prop.startswith(ASSOCIATION_PREFIX):
            if prop not in record:
                return None
            out[prop] = record[prop]
        elif change.source is DV:
            raw = f"_{prop[len(ASSOCIATION_PREFIX) :].partition(':')[0]}_value"
            if raw not in record:
                return None
            out[prop] = record[raw]
    return out


def _pair_up(group: list[Unit]) -> None:
    """Two unlinked records of one route (one match key), one on each side, are one pair: the units merge,
    whatever the CRMs' own searches would find (names with odd spacing, a search index lagging)."""
    unlinked = [u for u in group if u.link is None]
    hubspot = [u for u in unlinked if u.ids[HS] is not None]
    dataverse = [u for u in unlinked if u.ids[DV] is not None]
    if len(hubspot) == 1 and len(dataverse) == 1:
        keep, other = hubspot[0], dataverse[0]
        keep.ids[DV] = other.ids[DV]
        keep.items.extend(other.items)
        keep.items.sort(key=lambda i: i.change.occurred_at)
        group.remove(other)


def _pair(text: str) -> Pair:
    hubspot, _, dataverse = text.partition("~")
    return Pair(hubspot=hubspot, dataverse=dataverse)


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


def _revision(link: Link | None) -> int | None:
    return None if link is None else link.revision


def _always() -> bool:
    return True
