"""Carrying out the rules a settled plan fired (`consumers.planner.RuleEffect`): read the related records,
write what `consumers.lifecycle.rule_writes` allows, audit each record.

In order, for the effects of one pass:

1. read every related record once (one batched read per system and object);
2. decide per record: values it already holds write nothing; a HubSpot lifecycle stage moves only forward
   unless the rule allows backwards; a refused value is a skip, counted and audited;
3. write round one (every value, and the clear of a stage going backwards), then round two (that stage),
   one batched call per system and round: HubSpot applies a batch's inputs in no guaranteed order, so a
   clear and its set are never in one request;
4. audit each write, with the record's old value and the rule's name.

A system error raises out of the batch, which is retried whole: the trigger's fingerprint has not moved,
so the rule fires again, and what already landed writes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from consumers.batch import Batch
from consumers.lifecycle import RuleWrites, rule_writes
from consumers.planner import RuleEffect
from consumers.ports import CrmGateway, Record, WriteKind, WriteOp, WriteOutcome
from consumers.units import Unit
from streams.audit import AuditAction, AuditRecord, FieldWrite
from streams.keys import SourceSystem

__all__ = ["apply_rules"]

Send = Callable[[SourceSystem, list[WriteOp]], Awaitable[list[WriteOutcome]]]


@dataclass(slots=True)
class _Target:
    unit: Unit
    effect: RuleEffect
    record: Record
    writes: RuleWrites
    failed: bool = False


async def apply_rules(
    batch: Batch,
    fired: Sequence[tuple[Unit, RuleEffect]],
    gateways: Mapping[SourceSystem, CrmGateway],
    send: Send,
    *,
    now: datetime,
    dry_run: bool,
) -> None:
    """Carry out ``fired`` (each effect once per batch pass), recording skips and audits in ``batch``."""
    unique = {(e.rule, e.system, e.object_type, e.object_id): (u, e) for u, e in fired}
    if not unique:
        return
    targets = await _decide(batch, list(unique.values()), gateways)
    for t in targets:
        for field, reason in t.writes.skips:
            batch.result.skips[(t.effect.rule, reason)] += 1
            why = f"{reason}: {field} stays {t.record.values.get(field)!r}, not {t.effect.values[field]!r}"
            batch.result.audits.append(_audit(batch, t, None, now=now, dry_run=dry_run, reason=why))
    for round_no in (0, 1):
        by_system: dict[SourceSystem, list[tuple[_Target, WriteOp]]] = {}
        for n, t in enumerate(targets):
            if t.failed or len(t.writes.rounds) <= round_no:
                continue
            op = WriteOp(
                ref=str(n),
                kind=WriteKind.UPDATE,
                object_type=t.effect.object_type,
                object_id=t.effect.object_id,
                values=t.writes.rounds[round_no],
            )
            by_system.setdefault(t.effect.system, []).append((t, op))
        for system, pending in by_system.items():
            outcomes = await send(system, [op for _, op in pending])
            for (t, op), outcome in zip(pending, outcomes, strict=True):
                if outcome.ok:
                    batch.result.audits.append(_audit(batch, t, op, now=now, dry_run=dry_run))
                    continue
                t.failed = True
                batch.result.skips[(t.effect.rule, "rule_write_failed")] += 1
                reason = f"rule_write_failed: {outcome.error or 'rejected'}"
                batch.result.audits.append(_audit(batch, t, None, now=now, dry_run=dry_run, reason=reason))


async def _decide(
    batch: Batch, fired: list[tuple[Unit, RuleEffect]], gateways: Mapping[SourceSystem, CrmGateway]
) -> list[_Target]:
    """Read the related records and decide what each may be written (a record gone is counted)."""
    wanted: dict[tuple[SourceSystem, str], tuple[set[str], set[str]]] = {}
    for _, e in fired:
        ids, fields = wanted.setdefault((e.system, e.object_type), (set(), set()))
        ids.add(e.object_id)
        fields.update(e.values)
    read: dict[tuple[SourceSystem, str], dict[str, Record]] = {}
    for (system, object_type), (ids, fields) in wanted.items():
        read[(system, object_type)] = await gateways[system].read(
            object_type, sorted(ids), fields=sorted(fields)
        )
    targets: list[_Target] = []
    for unit, e in fired:
        record = read[(e.system, e.object_type)].get(e.object_id)
        if record is None:
            batch.result.skips[(e.rule, "rule_target_gone")] += 1
            continue
        writes = rule_writes(e.system, record.values, e.values, allow_backwards=e.allow_backwards)
        targets.append(_Target(unit, e, record, writes))
    return targets


def _audit(
    batch: Batch,
    t: _Target,
    op: WriteOp | None,
    *,
    now: datetime,
    dry_run: bool,
    reason: str | None = None,
) -> AuditRecord:
    """A rule's write (``op``) to a related record, or its refusal (``reason``); the trigger's change is
    the source."""
    fields = tuple(
        FieldWrite(field=k, old=t.record.values.get(k), new=v, rule=f"rule:{t.effect.rule}")
        for k, v in (op.values.items() if op is not None else ())
    )
    return AuditRecord(
        step=t.effect.rule,
        action=AuditAction.UPDATE if op is not None else AuditAction.SKIP,
        source=t.unit.items[-1].change.ref,
        target=batch.ref(t.effect.system, t.effect.object_type, t.effect.object_id),
        fields=fields,
        reason=reason,
        source_event_ids=t.unit.event_ids,
        dry_run=dry_run,
        at=now,
    )
