"""Which records a settled plan excludes, and which it shows synced. Pure, no I/O.

A pair's plan names its skips (`consumers.planner.Skip`): a record refusal (a step that does not run for
the pair: an ambiguous match, an empty match key, a counterpart deleted) or a field skip (an option with no
counterpart, an owner with no enabled user...). Those whose reason is listed (`streams.exclusions.LISTED`)
exclude the step's source record: one `Exclusion` per record, its main reason the first refusal, else the
first field skip, with the source values that caused them. Every other record of the pair is observed
synced (``None``), which clears an exclusion it had (`streams.exclusions.fold` writes a tombstone only for a
key that is excluded). A record deleted is observed synced too: nothing is left to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from consumers.batch import Batch
from consumers.config import Step, SyncConfig
from consumers.planner import PairPlan, PairState, Skip
from consumers.units import Unit
from streams.codec import Scalar
from streams.events import ChangeEvent
from streams.exclusions import LISTED, Exclusion, ExclusionReason, Observed, short
from streams.keys import RecordRef, SourceSystem

__all__ = ["excluded", "record_gone"]

HS = SourceSystem.HUBSPOT
DV = SourceSystem.DATAVERSE
MATCH_REFUSALS = frozenset({ExclusionReason.AMBIGUOUS_MATCH, ExclusionReason.EMPTY_MATCH_KEY})


def excluded(
    config: SyncConfig, unit: Unit, state: PairState, plan: PairPlan, *, batch: Batch, now: datetime
) -> list[Observed]:
    """Each record of a settled pair: its exclusion, or ``None`` (synced)."""
    steps = {s.name: s for s in config.steps_for(unit.pair)}
    by_source: dict[SourceSystem, list[tuple[Step, Skip]]] = {}
    for skip in plan.skips:
        step = steps.get(skip.step)
        if step is not None and skip.reason in LISTED:
            by_source.setdefault(step.source.system, []).append((step, skip))
    refs = _refs(unit, state, batch)
    out: list[Observed] = []
    for system, ref in refs.items():
        skips = by_source.get(system)
        if not skips:
            out.append((ref.key, None))
            continue
        out.append(
            (ref.key, _exclusion(unit, state, skips, ref=ref, counterpart=refs.get(system.other), now=now))
        )
    return out


def record_gone(change: ChangeEvent) -> Observed:
    """A record deleted (or merged away): its exclusion, if any, is cleared."""
    return change.ref.key, None


def _refs(unit: Unit, state: PairState, batch: Batch) -> dict[SourceSystem, RecordRef]:
    """The pair's records, where known: the unit's ids (a first-sync match has set them), else the link's."""
    refs: dict[SourceSystem, RecordRef] = {}
    for system in (HS, DV):
        object_id = unit.ids[system]
        if object_id is not None:
            refs[system] = batch.ref(system, unit.pair.object_on(system), object_id)
        elif state.link is not None:
            refs[system] = state.link.side(system).ref
    return refs


def _exclusion(
    unit: Unit,
    state: PairState,
    skips: list[tuple[Step, Skip]],
    *,
    ref: RecordRef,
    counterpart: RecordRef | None,
    now: datetime,
) -> Exclusion:
    """One record's exclusion: the first refusal (a skip with no field) leads, else the first field skip."""
    skips = sorted(skips, key=lambda ss: ss[1].field is not None)  # stable: refusals first, in plan order
    step, main = skips[0]
    record = state.record(ref.system)
    source: Mapping[str, Scalar] = record.values if record is not None else {}
    values: dict[str, Scalar] = {}
    fields: list[str] = []
    for s, skip in skips:
        if skip.field is None:
            if skip.reason in MATCH_REFUSALS:
                values.update({f: short(source.get(f)) for f in _match_fields(s)})
            continue
        fields.append(skip.field)
        for f in s.record_fields():
            if f.target == skip.field:
                values[f.source] = short(source.get(f.source))
    reasons = tuple(dict.fromkeys(ExclusionReason(skip.reason) for _, skip in skips))
    detail = (
        f"{state.match.ambiguous} candidates with this match key"
        if main.reason == ExclusionReason.AMBIGUOUS_MATCH
        else None
    )
    return Exclusion(
        step=step.name,
        reason=ExclusionReason(main.reason),
        reasons=reasons,
        record=ref,
        counterpart=counterpart,
        fields=tuple(dict.fromkeys(fields)),
        values=values,
        detail=detail,
        event_ids=unit.event_ids,
        first_seen=now,
        last_seen=now,
    )


def _match_fields(step: Step) -> tuple[str, ...]:
    """The source fields a step's match key is made of."""
    rule = step.match
    return (rule.source,) if rule.with_name is None else (rule.source, rule.with_name.source)
