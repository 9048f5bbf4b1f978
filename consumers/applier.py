"""The applier: a batch of work items -> reads, plans, batched writes, link updates, audit records.

No Kafka here and no HTTP: it talks to the CRMs through `consumers.ports.CrmGateway` and returns what the
apply loop must publish (links, audit, dead letters) in the same transaction as the consumed offsets. This
is the asynchronous shell around pure decisions: grouping into units and passes (`consumers.units`), merges,
deletes and privacy deletions (`consumers.merges`), planning (`consumers.planner`), settling into links and
audit records (`consumers.settle`), the per-batch state (`consumers.batch`).

A batch, in order:

1. its items, in batch order: a merge, delete or privacy deletion acts on the links (a merge its event
   cannot settle comes back as a change of the survivor); every other change joins its pair's unit;
2. deletes are propagated (the counterpart deleted, then the link tombstoned); units of a pair just deleted
   are moot;
3. the units run in passes: read both records (and look up first-sync matches), plan, write (one batched
   call per system), settle. A pair planned with a conflict on a field whose HubSpot value this daemon
   wrote itself (HubSpot's property history says so: a write whose link update never committed, its
   replica killed between the two) is planned again with that value counted as synced: one more read
   per pass and object type, for the pairs in conflict only. A unit goes again in the next pass when its
   link moved meanwhile (a merge found in a read), on a Dataverse 412 (re-read and re-plan), or on a
   record error (up to `RECORD_ERROR_ATTEMPTS`, then dead-lettered);
   The rules the settled plans fired write their related records (`consumers.rule_effects`);
4. pairs whose association waited for a record this batch linked are queued to be planned again.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from consumers.answered import ChangeAnswers, answering
from consumers.batch import Batch, BatchResult
from consumers.concurrent import concurrently
from consumers.config import SyncConfig
from consumers.exclusions import excluded, record_gone
from consumers.fieldsets import FieldSets
from consumers.lookups import field_lookups
from consumers.matching import match_key
from consumers.merges import SPECIAL, Deletion, deleted, lost_merge, special
from consumers.planner import MatchState, PairPlan, PairState, RuleEffect, plan_pair
from consumers.ports import (
    BatchRevokedError,
    CrmGateway,
    Record,
    SentJournal,
    WriteKind,
    WriteOp,
    WriteOutcome,
)
from consumers.rule_effects import apply_rules
from consumers.sent import Noted, SentValues, covered_by_own
from consumers.settle import planned, rechecks, refusal, settle
from consumers.units import Grouping, Unit, current, linked_meanwhile, match_requests, step_name
from streams.codec import Scalar
from streams.events import Operation
from streams.keys import RecordRef, SourceSystem
from streams.link_store import CommittedLinks
from streams.links import Link
from streams.work import WorkItem

__all__ = ["Applier"]

HS = SourceSystem.HUBSPOT
DV = SourceSystem.DATAVERSE
MAX_PASSES = 6
RECORD_ERROR_ATTEMPTS = 3

Reader = Callable[[Unit, SourceSystem], Record | None]


class Applier:
    def __init__(
        self,
        config: SyncConfig,
        gateways: Mapping[SourceSystem, CrmGateway],
        index: CommittedLinks,
        *,
        dry_run: bool = False,
        clock: type[datetime] = datetime,
        sent: SentValues | None = None,
        journal: SentJournal | None = None,
    ) -> None:
        self.config = config
        self.gateways = gateways
        self.index = index
        self.dry_run = dry_run
        self.fields = FieldSets(config)
        self.sent = sent if sent is not None else SentValues()
        self.journal = journal
        """Where notes of updates are kept before they are sent; without one they live in memory only."""
        self._clock = clock

    def commit(self, result: BatchResult) -> None:
        """Once published: the batch's link changes join the link store; what they cover is no longer
        pending."""
        self.index.commit(result.links)
        self.sent.forget(link for _, link in result.links)

    def _now(self) -> datetime:
        return self._clock.now(UTC)

    def ref(self, system: SourceSystem, object_type: str, object_id: str) -> RecordRef:
        return RecordRef(
            system=system, tenant=self.gateways[system].tenant, object_type=object_type, object_id=object_id
        )

    async def apply(
        self, items: Sequence[WorkItem], *, owned: Callable[[], bool] | None = None
    ) -> BatchResult:
        """Apply a batch. Raises `CrmUnavailableError` (nothing committed: the apply loop retries the batch),
        and `BatchRevokedError` when ``owned`` (asked before every gateway write) says the batch's
        partitions have moved to another replica."""
        tenants = {system: gateway.tenant for system, gateway in self.gateways.items()}
        batch = Batch(self.index, tenants, dry_run=self.dry_run, owned=owned)
        grouping = Grouping(batch.view, self.fields)
        deletions: list[Deletion] = []
        # The batch's links in one lookup: no await until the items are grouped, so the answers hold.
        with batch.view.prefetched(item.change.key for item in items):
            for item in items:
                if item.change.operation not in SPECIAL:
                    grouping.add(item)
                    continue
                if item.change.operation is not Operation.MERGE:
                    batch.result.exclusions.append(record_gone(item.change))
                sorted_out = special(item, batch, self.fields, self._now())
                batch.take(sorted_out.decided)
                if sorted_out.deletion is not None:
                    deletions.append(sorted_out.deletion)
                if sorted_out.survivor is not None:
                    grouping.add(sorted_out.survivor)  # a merge its event cannot settle: the survivor is read
        batch.result.echoes += grouping.echoes
        gone = await self._delete(batch, deletions)
        # Changes to a pair whose record was just deleted are moot: neither side is there to write.
        passes = [[u for u in p if u.link is None or u.link.link_id not in gone] for p in grouping.passes()]
        queue: list[Unit] = []
        rounds = 0
        while passes or queue:
            rounds += 1
            units = queue + (passes.pop(0) if passes else [])
            queue = []
            if rounds > MAX_PASSES + len(items):
                batch.result.failed.extend(u.failure() for u in units)
                break
            for unit in await self._pass(batch, current(units, batch)):
                unit.attempts += 1
                if unit.error is not None and unit.attempts >= RECORD_ERROR_ATTEMPTS:
                    batch.result.failed.append(unit.failure())
                else:
                    queue.append(unit)
        batch.result.rechecks.extend(rechecks(batch, self._now()))
        return batch.result

    async def _pass(self, batch: Batch, units: list[Unit]) -> list[Unit]:
        """Read, plan, write and settle the units; returns those to run again in the next pass."""
        states, relinked = await self._read(batch, units)
        lookups = await field_lookups(self.fields, self.gateways, (state for _, state in states))
        plans: list[tuple[Unit, PairState, PairPlan]] = []
        for unit, state in states:
            plan = plan_pair(self.config, state, resolve=batch.counterpart, now=self._now(), lookups=lookups)
            plans.append((unit, state, plan))
        plans = await self._own_writes(batch, plans, lookups)
        for _, state, plan in plans:
            batch.take(planned(state, plan))
        outcomes = await self._write(batch, [(unit, plan) for unit, _, plan in plans])
        retry: list[Unit] = []
        fired: list[tuple[Unit, RuleEffect]] = []
        for (unit, state, plan), mine in zip(plans, outcomes, strict=True):
            if unit.link is not None and _revision(batch.view.get(unit.link.link_id)) != unit.link.revision:
                retry.append(unit)  # moved in this pass (a merge found in a read): plan again on the new link
            elif any(o.conflict for o in mine.values()):
                retry.append(unit)
            elif errors := [o.error or "rejected" for o in mine.values() if not o.ok]:
                unit.error = "; ".join(errors)
                unit.failed_step = plan.writes[0].steps[0] if plan.writes else None
                retry.append(unit)
            else:
                batch.take(
                    settle(unit, state, plan, mine, batch=batch, now=self._now()), publish=not self.dry_run
                )
                batch.result.exclusions += excluded(
                    self.config, unit, state, plan, batch=batch, now=self._now()
                )
                fired += [(unit, effect) for effect in plan.effects]
        send = functools.partial(self._send, batch)
        await apply_rules(batch, fired, self.gateways, send, now=self._now(), dry_run=self.dry_run)
        return retry + relinked

    async def _own_writes(
        self,
        batch: Batch,
        plans: list[tuple[Unit, PairState, PairPlan]],
        lookups: dict[str, dict[str, str]],
    ) -> list[tuple[Unit, PairState, PairPlan]]:
        """The plans again, those with a conflict on a field whose HubSpot value is this daemon's own write
        planned anew with it counted as synced (`covered_by_own`), as `SentValues.covering` counts the
        writes this replica remembers. HubSpot is asked once per object type, for the conflicting pairs'
        conflicting fields only."""
        asked: dict[tuple[str, str], set[str]] = {}
        for unit, state, plan in plans:
            if state.link is not None and state.hubspot is not None and plan.conflicts:
                key = (unit.pair.object_on(HS), state.hubspot.object_id)
                asked.setdefault(key, set()).update(c.hubspot_field for c in plan.conflicts)
        if not asked:
            return plans
        own: dict[tuple[str, str], dict[str, Scalar]] = {}
        for object_type in dict.fromkeys(t for t, _ in asked):
            ids = sorted(i for t, i in asked if t == object_type)
            fields = sorted({f for (t, _), fs in asked.items() if t == object_type for f in fs})
            found = await self.gateways[HS].own_writes(object_type, ids, fields=fields)
            own.update({(object_type, i): values for i, values in found.items()})
        return [self._own_covered(batch, p, own=own, lookups=lookups) for p in plans]

    def _own_covered(
        self,
        batch: Batch,
        entry: tuple[Unit, PairState, PairPlan],
        *,
        own: Mapping[tuple[str, str], Mapping[str, Scalar]],
        lookups: dict[str, dict[str, str]],
    ) -> tuple[Unit, PairState, PairPlan]:
        """One pair's plan, planned again if HubSpot names this daemon as the writer of a conflicting
        field's value (only those fields count: the others were not asked about)."""
        unit, state, plan = entry
        link, hs = state.link, state.hubspot
        if link is None or hs is None or (mine := own.get((unit.pair.object_on(HS), hs.object_id))) is None:
            return unit, state, plan
        contested = {c.hubspot_field for c in plan.conflicts}
        mine = {f: v for f, v in mine.items() if f in contested}
        covered = covered_by_own(link, hs, HS, mine, self.fields.tracked(unit.pair)[HS], now=self._now())
        if covered == link:
            return unit, state, plan
        again = dataclasses.replace(state, link=covered)
        return (
            unit,
            again,
            plan_pair(self.config, again, resolve=batch.counterpart, now=self._now(), lookups=lookups),
        )

    # -- reads ---------------------------------------------------------------------------------------

    async def _read(self, batch: Batch, units: list[Unit]) -> tuple[list[tuple[Unit, PairState]], list[Unit]]:
        """The pairs' states; and the units relinked (the next pass plans them with the link):

        - by a merge found in their HubSpot record, one whose webhook is lost or late, shown by an unlinked
          record whose ``hs_merged_object_ids`` names linked records, or by a linked id that now answers
          with the merge's record (new id). The merge is applied now, so the survivor's changes are neither
          taken for a new contact nor lost;
        - by another replica whose link for an unlinked record reached the link store while this pass read
          (its tail runs between any two awaits): the counterpart now looks "linked to another record" to
          the match, so planning the unit as unlinked would create a second counterpart."""
        fetched = await self._fetch(units)

        def record(unit: Unit, system: SourceSystem) -> Record | None:
            object_id = unit.ids[system]
            if object_id is None:
                return None
            return fetched[(system, unit.pair.object_on(system))].get(object_id)

        relinked: list[Unit] = []
        for unit in units:
            hs = record(unit, HS)
            if hs is None or (hs.object_id == unit.ids[HS] and unit.link is not None):
                continue
            link, decided = lost_merge(
                unit.items[-1].change, unit.pair, hs, batch, fields=self.fields, now=self._now()
            )
            if link is not None:
                batch.take(decided)
                unit.relink(link)
                relinked.append(unit)
        units = [u for u in units if u not in relinked]
        matches = await self._match(batch, units, record)
        late = [u for u in units if linked_meanwhile(u, batch)]
        relinked += late
        states: list[tuple[Unit, PairState]] = []
        for unit in (u for u in units if u not in late):
            state = self._state(batch, unit, record(unit, HS), record(unit, DV), matches.get(unit, []))
            if state is not None:
                states.append((unit, state))
        return states, relinked

    def _state(
        self, batch: Batch, unit: Unit, hs: Record | None, dv: Record | None, candidates: list[Record]
    ) -> PairState | None:
        """The pair's state to plan from: its records, the first-sync match taken (one candidate) or
        refused (several); None when neither record is there any more."""
        match = MatchState()
        if len(candidates) == 1:
            other = candidates[0]
            if unit.ids[HS] is None:
                hs, unit.ids[HS] = other, other.object_id
            else:
                dv, unit.ids[DV] = other, other.object_id
        elif len(candidates) > 1:
            # Refused, and audited here with the candidates' count; the planner's skip (`planned`) counts it.
            match = MatchState(ambiguous=len(candidates))
            reason = f"ambiguous_match: {len(candidates)} candidates"
            audit = refusal(unit, step_name(self.config, unit), reason, self._now(), dry_run=self.dry_run)
            batch.result.audits.append(audit)
        if hs is None and dv is None:
            batch.result.skips[(step_name(self.config, unit), "source_record_gone")] += 1
            batch.result.exclusions.append(record_gone(unit.items[-1].change))
            return None
        link = unit.link
        if link is not None:
            link = self.sent.covering(link, {HS: hs, DV: dv}, self.fields.tracked(unit.pair), self._now())
        return PairState(unit.pair, hs, dv, link, match, pushed=unit.pushed)

    async def _fetch(self, units: list[Unit]) -> dict[tuple[SourceSystem, str], dict[str, Record]]:
        """The current state of every record the units name: the record a unit's change carries whole where
        it answers the read (`consumers.answered`), else one batched read per system and object, all at
        once."""
        wanted: dict[tuple[SourceSystem, str], set[str]] = {}
        fetched: dict[tuple[SourceSystem, str], dict[str, Record]] = {}
        for unit in units:
            for system in (HS, DV):
                object_id = unit.ids[system]
                if object_id is None:
                    continue
                key = (system, unit.pair.object_on(system))
                answered = fetched.setdefault(key, {})
                record = await self._answered(unit, system, object_id)
                if record is not None and object_id not in wanted.get(key, ()):
                    answered[object_id] = record
                else:
                    answered.pop(object_id, None)  # another unit of the record reads it: one state for both
                    wanted.setdefault(key, set()).add(object_id)
        reads = []
        for (system, object_type), ids in wanted.items():
            props, assocs = self.fields.reads(system, object_type)
            reads.append(
                self.gateways[system].read(object_type, sorted(ids), fields=props, associations=assocs)
            )
        # Every system and object at once: the pass waits for the slowest read, not for their sum.
        for key, found in zip(wanted, await concurrently(reads), strict=True):
            fetched[key] |= found
        return fetched

    async def _answered(self, unit: Unit, system: SourceSystem, object_id: str) -> Record | None:
        """The record as the unit's change carries it, when that answers its read (`consumers.answered`)."""
        gateway = self.gateways[system]
        if not isinstance(gateway, ChangeAnswers):
            return None
        change = answering(unit.items, system, object_id, unit.link, attempts=unit.attempts)
        if change is None or change.record is None:
            return None
        props, assocs = self.fields.reads(system, unit.pair.object_on(system))
        return await gateway.answer(
            unit.pair.object_on(system),
            change.record,
            version=change.source_version,
            fields=props,
            associations=assocs,
        )

    async def _match(self, batch: Batch, units: list[Unit], record: Reader) -> dict[Unit, list[Record]]:
        """First sync: look each unlinked unit's missing side up by the match key of the side it has.

        Candidates already linked to another record are not candidates."""
        matches: dict[Unit, list[Record]] = {}
        for (system, object_type, step), by_value in match_requests(units, record, self.config).items():
            props, assocs = self.fields.reads(system, object_type)
            found = await self.gateways[system].find(
                object_type,
                step.match.target,
                sorted(by_value),
                fields=sorted({*props, *step.match.target_fields()}),
                contains=step.match.kind == "domain",
            )
            for value, group in by_value.items():
                for unit, key in group:
                    known = {r.object_id for r in matches.get(unit, [])}
                    matches[unit] = [
                        *matches.get(unit, []),
                        *(
                            r
                            for r in found.get(value, [])
                            if r.object_id not in known
                            and match_key(step.match, r.values, side="target") == key
                            and batch.linked(system, object_type, r.object_id) is None
                        ),
                    ]
            candidate_ids = sorted({r.object_id for rs in matches.values() for r in rs})
            if assocs and candidate_ids:
                # A match lookup returns no associations: read the candidates in full.
                full = await self.gateways[system].read(
                    object_type, candidate_ids, fields=props, associations=assocs
                )
                for unit, candidates in matches.items():
                    matches[unit] = [full.get(r.object_id, r) for r in candidates]
        return matches

    # -- writes --------------------------------------------------------------------------------------

    async def _write(
        self, batch: Batch, plans: list[tuple[Unit, PairPlan]]
    ) -> list[dict[SourceSystem, WriteOutcome]]:
        """Every plan's writes, in one batched call per system: each plan's outcomes, by system. An update
        is noted as sent first (`SentValues`), and the notes are kept by the journal before anything is
        sent."""
        ops: dict[SourceSystem, list[WriteOp]] = {HS: [], DV: []}
        whose: dict[SourceSystem, list[int]] = {HS: [], DV: []}
        noted: dict[str, Noted] = {}
        for n, (unit, plan) in enumerate(plans):
            for w in plan.writes:
                if w.kind is WriteKind.UPDATE and w.object_id and not self.dry_run:
                    key = batch.ref(w.system, w.object_type, w.object_id).key
                    noted.setdefault(key, {}).update(self.sent.note(key, w, plan))
                ops[w.system].append(w.op(ref=str(n), origin_id=unit.ids[w.system.other]))
                whose[w.system].append(n)
        if noted and self.journal is not None:
            await self.journal.record(noted)
        outcomes: list[dict[SourceSystem, WriteOutcome]] = [{} for _ in plans]
        # Both systems at once: a plan's writes were decided from one state, none waits for another's
        # outcome (a write that needs the other side's new id is planned in a later pass).
        systems = [system for system, sending in ops.items() if sending]
        sent = await concurrently(self._send(batch, system, ops[system]) for system in systems)
        for system, answers in zip(systems, sent, strict=True):
            for n, outcome in zip(whose[system], answers, strict=True):
                outcomes[n][system] = outcome
        return outcomes

    async def _send(self, batch: Batch, system: SourceSystem, ops: list[WriteOp]) -> list[WriteOutcome]:
        """One gateway call for ``ops`` (none in a dry run), counted in the batch's result."""
        if not ops:
            return []
        if self.dry_run:
            outcomes = [
                WriteOutcome(
                    ref=op.ref, ok=True, object_id=op.object_id or f"dry-run-{op.origin_id or op.ref}"
                )
                for op in ops
            ]
        else:
            if not batch.owned():
                raise BatchRevokedError(f"{len(ops)} {system} write(s) not sent: the partitions moved")
            outcomes = await self.gateways[system].write(ops)
            batch.result.api_writes += len(ops)
        batch.result.count_writes(system, ops, outcomes)
        return outcomes

    async def _delete(self, batch: Batch, deletions: list[Deletion]) -> set[str]:
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
            for system, group in per_system.items():
                ops = [d.op(str(n)) for n, d in enumerate(group)]
                for deletion, outcome in zip(group, await self._send(batch, system, ops), strict=True):
                    if outcome.ok:
                        batch.take(deleted(deletion, self._now(), dry_run=self.dry_run))
                        gone.add(deletion.link.link_id)
                        continue
                    deletion.attempts += 1
                    deletion.error = outcome.error or "rejected"
                    if deletion.attempts < RECORD_ERROR_ATTEMPTS:
                        todo.append(deletion)
                    else:
                        batch.result.failed.append(deletion.failure())
        return gone


def _revision(link: Link | None) -> int | None:
    return None if link is None else link.revision
