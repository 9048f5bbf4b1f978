"""The planner: the current state of a pair (both records and their link) -> the writes that sync it.

Pure. A change on either side triggers a plan of the whole pair: the pair's enabled steps run in
configuration order over a *projection* of both records, so a later step reads what an earlier step
would have written, exactly as the seeds' sequential steps do. That makes the default conflict policy,
``step_order``, fall out of the order itself: for a field mapped both ways and changed on both sides, the
earlier step copies its source over the target before the later step reads it.

Two kinds of value come from the daemon rather than from a record, and both ride on writes the sync makes
anyway: a field map of `SourceKind.SYNC_TIME` (the time of the write, ``now``) is set on a side only when
that side is written (an update with values, or a create); the counterpart's id (`COUNTERPART_ID`) is set
on a record matched on first sync (one write per side, the first sync's own) and later only inside a write
to that side. Neither is tracked, so their echoes are no change.

Whether a side "changed a field since the last sync" is decided against the link's per-field fingerprints
(`streams.links`). A field whose values already agree writes nothing; a field that changed on one side only
always flows; an empty value never overwrites a non-empty one unless the field allows it. Our own writes
coming back (echoes) match the fingerprints and plan nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from consumers.config import (
    COUNTERPART_ID,
    AssociationMap,
    ConflictPolicy,
    FieldMap,
    Pair,
    SourceFilter,
    Step,
    SyncConfig,
    ValueType,
)
from consumers.matching import match_key
from consumers.ports import Record, WriteKind, WriteOp
from consumers.values import Converted, canonical, convert, convert_time, is_empty, same
from streams.codec import Scalar
from streams.keys import SourceSystem
from streams.links import Link, fingerprint

__all__ = [
    "ASSOCIATION_PREFIX",
    "Conflict",
    "FieldDecision",
    "Lookups",
    "MatchState",
    "PairPlan",
    "PairState",
    "Pending",
    "Resolver",
    "RuleEffect",
    "SideWrite",
    "Skip",
    "field_value",
    "plan_pair",
    "tracked_fields",
]

ASSOCIATION_PREFIX = "@"
"""Link fingerprints of associations are stored under ``@<association key>``."""

HS = SourceSystem.HUBSPOT
DV = SourceSystem.DATAVERSE

Resolver = Callable[[SourceSystem, str, str], str | None]
"""(system, object type, record id) -> the id of its linked counterpart in the other system, or None."""
Lookups = Mapping[str, Mapping[str, str]]
"""Field lookup kind (``owner_email``) -> value read -> value to write."""
NO_LOOKUP: Mapping[str, str] = MappingProxyType({})
NO_LOOKUPS: Lookups = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MatchState:
    """What the first-sync lookup found on the side that has no record yet."""

    ambiguous: int = 0
    """How many candidates matched when more than one did (the match is refused)."""


@dataclass(frozen=True, slots=True)
class PairState:
    pair: Pair
    hubspot: Record | None
    dataverse: Record | None
    link: Link | None
    match: MatchState = MatchState()
    pushed: SourceSystem | None = None
    """The side an operator pushed (`cdc push`, `cdc pull`): for this pass, and only this one, its values
    go over the other side's wherever a step maps them, changed since the last sync or not, and no step
    writes into it a field or association the two sides map both ways (Accelo's rule: the side that started
    the sync wins)."""

    def record(self, system: SourceSystem) -> Record | None:
        return self.hubspot if system is HS else self.dataverse


@dataclass(frozen=True, slots=True)
class FieldDecision:
    """One value a write sets, and why."""

    step: str
    source: str
    target: str
    old: Scalar
    new: Scalar
    rule: str


@dataclass(frozen=True, slots=True)
class Skip:
    step: str
    reason: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    step: str
    field: str
    winner: SourceSystem
    rule: ConflictPolicy
    hubspot_field: str
    """The field's HubSpot property (``field`` is the asking step's target, on either side)."""


@dataclass(frozen=True, slots=True)
class Pending:
    """An association whose related record has no counterpart yet: retried when it is linked."""

    step: str
    key: str
    related_system: SourceSystem
    related_object: str
    related_id: str


@dataclass(slots=True)
class SideWrite:
    system: SourceSystem
    kind: WriteKind
    object_type: str
    object_id: str | None
    if_match: str | None
    values: dict[str, Scalar] = field(default_factory=dict)
    associations: dict[str, str | None] = field(default_factory=dict)
    decisions: list[FieldDecision] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def op(self, *, ref: str, origin_id: str | None) -> WriteOp:
        """The write to send; ``origin_id``, the id of the record on the other side, keys a create."""
        return WriteOp(
            ref=ref,
            kind=self.kind,
            object_type=self.object_type,
            object_id=self.object_id,
            values=self.values,
            if_match=self.if_match,
            associations=self.associations,
            origin_id=origin_id if self.kind is WriteKind.CREATE else None,
        )


@dataclass(frozen=True, slots=True)
class RuleEffect:
    """A rule fired: set ``values`` on a related record, as `consumers.lifecycle.rule_writes` allows once
    the record's current values are read."""

    rule: str
    system: SourceSystem
    object_type: str
    object_id: str
    values: Mapping[str, Scalar]
    allow_backwards: bool


@dataclass(frozen=True, slots=True)
class PairPlan:
    pair: Pair
    writes: tuple[SideWrite, ...]
    after: Mapping[SourceSystem, Mapping[str, str]]
    """Per existing (or created) side: tracked field -> fingerprint of its value once the writes land."""
    skips: tuple[Skip, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    pending: tuple[Pending, ...] = ()
    effects: tuple[RuleEffect, ...] = ()

    def write_for(self, system: SourceSystem) -> SideWrite | None:
        return next((w for w in self.writes if w.system is system), None)


def tracked_fields(config: SyncConfig, pair: Pair) -> dict[SourceSystem, dict[str, ValueType]]:
    """Every property a pair's steps read or write, per side, with its value type (associations as
    ``@<key>`` strings): the fields the link fingerprints and the reads must fetch."""
    out: dict[SourceSystem, dict[str, ValueType]] = {HS: {}, DV: {}}
    for step in config.steps_for(pair):
        src, dst = step.source.system, step.target.system
        for f in step.record_fields():  # a daemon-written target is not tracked: its echo is no change
            out[src].setdefault(f.source, f.source_type)
            out[dst].setdefault(f.target, f.target_type)
        for am in step.associations:
            out[src].setdefault(ASSOCIATION_PREFIX + am.on(src), ValueType.STRING)
            out[dst].setdefault(ASSOCIATION_PREFIX + am.on(dst), ValueType.STRING)
        if step.filter is not None:
            # Fingerprinted too, so that a record entering the sync set is a change, never an echo.
            if step.filter.flag:
                out[src].setdefault(step.filter.flag, ValueType.BOOL)
            for criterion in step.filter.criteria:
                out[src].setdefault(criterion.field, ValueType.STRING)
    for rule in config.rules_for(pair):  # a rule fires on a change of its field: fingerprinted as well
        out[rule.when.system].setdefault(rule.when.field, ValueType.STRING)
    return out


def passes(flt: SourceFilter | None, values: Mapping[str, Scalar]) -> bool:
    """Is a source record in the step's sync set?"""
    if flt is None:
        return True
    if flt.flag is not None and not _truthy(values.get(flt.flag)):
        return False
    return all(_holds(c.op, values.get(c.field), c.value) for c in flt.criteria)


def _holds(op: str, value: Scalar, wanted: object) -> bool:
    if op == "eq":
        return _norm(value) == _norm(wanted)
    if op == "ne":
        return _norm(value) != _norm(wanted)
    if op == "in":
        options = wanted if isinstance(wanted, list | tuple | set | frozenset) else ()
        return _norm(value) in {_norm(x) for x in options}
    if op == "not_empty":
        return not is_empty(value)
    return is_empty(value)


def _truthy(value: Scalar) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "on"}


def _norm(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


@dataclass(slots=True)
class _Planning:
    config: SyncConfig
    state: PairState
    resolve: Resolver
    proj: dict[SourceSystem, dict[str, Scalar]]
    lookups: Lookups
    now: datetime
    ran: list[Step] = field(default_factory=list)
    """The steps that ran (not refused), in order."""
    writes: dict[SourceSystem, SideWrite] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    unresolved: set[tuple[SourceSystem, str]] = field(default_factory=set)
    frozen: set[tuple[SourceSystem, str]] = field(default_factory=set)
    conflict_seen: set[tuple[str, str]] = field(default_factory=set)

    def exists(self, system: SourceSystem) -> bool:
        return self.state.record(system) is not None or system in self.writes

    def changed(self, system: SourceSystem, prop: str, value_type: ValueType) -> bool:
        """Did this side change ``prop`` since the last sync (by the link's fingerprint)?"""
        link = self.state.link
        record = self.state.record(system)
        if link is None or record is None:
            return True
        synced = link.side(system).fields.get(prop)
        original = field_value(record, prop)
        return synced is None or synced.fingerprint != fingerprint(canonical(original, value_type, system))

    def write(self, step: Step, system: SourceSystem) -> SideWrite:
        w = self.writes.get(system)
        if w is None:
            record = self.state.record(system)
            w = SideWrite(
                system=system,
                kind=WriteKind.UPDATE if record is not None else WriteKind.CREATE,
                object_type=self.state.pair.object_on(system),
                object_id=record.object_id if record is not None else None,
                if_match=record.version if record is not None else None,
            )
            self.writes[system] = w
        if step.name not in w.steps:
            w.steps.append(step.name)
        return w


def field_value(record: Record, prop: str) -> Scalar:
    """A record's value of a tracked property (``@<key>``: the associated record's id)."""
    if prop.startswith(ASSOCIATION_PREFIX):
        return record.associations.get(prop[len(ASSOCIATION_PREFIX) :])
    return record.values.get(prop)


def plan_pair(
    config: SyncConfig,
    state: PairState,
    *,
    resolve: Resolver,
    now: datetime,
    lookups: Lookups = NO_LOOKUPS,
) -> PairPlan:
    """Plan the writes that bring the pair in sync under the configuration's steps and rules.

    ``resolve`` finds a related record's counterpart; ``now`` is the time of the writes (what a
    `SourceKind.SYNC_TIME` field is set to); ``lookups`` holds, per field lookup kind, what the caller read
    for the records' values (``owner_email``: owner id -> email)."""
    proj: dict[SourceSystem, dict[str, Scalar]] = {}
    for system in (HS, DV):
        record = state.record(system)
        values = dict(record.values) if record is not None else {}
        if record is not None:
            values.update({ASSOCIATION_PREFIX + k: v for k, v in record.associations.items()})
        proj[system] = values
    p = _Planning(config=config, state=state, resolve=resolve, proj=proj, lookups=lookups, now=now)
    steps = config.steps_for(state.pair)
    for step in steps:
        _run_step(p, step, steps)
    _stamp_counterpart_ids(p)
    _stamp_sync_time(p)
    effects = _fired(p)
    return PairPlan(
        pair=state.pair,
        writes=tuple(
            w for w in p.writes.values() if w.kind is WriteKind.CREATE or w.values or w.associations
        ),
        after=_after(p),
        skips=tuple(p.skips),
        conflicts=tuple(p.conflicts),
        pending=tuple(p.pending),
        effects=effects,
    )


def _run_step(p: _Planning, step: Step, steps: tuple[Step, ...]) -> None:
    src, dst = step.source.system, step.target.system
    if not p.exists(src):
        return
    source_values = p.proj[src]
    creating = not p.exists(dst)
    refusal = _refusal(p, step, source_values, creating=creating)
    if refusal is not None:
        p.skips.append(Skip(step.name, refusal))
        _freeze(p, step)
        return
    p.ran.append(step)
    if creating:
        _join_sync_set(p, step, steps)
        _constants(p, step)
    for f in step.record_fields():
        _plan_field(p, step, f, steps, creating=creating)
    for am in step.associations:
        _plan_association(p, step, am, creating=creating)


def _join_sync_set(p: _Planning, step: Step, steps: tuple[Step, ...]) -> None:
    """Create the counterpart inside the reverse step's sync set: a pair the daemon made syncs both ways
    (a HubSpot company created from an account gets ``sync_to_d365``, a Dataverse contact created from a
    HubSpot contact ``cdc_synctohubspot``), instead of a record whose later edits silently go nowhere."""
    dst = step.target.system
    w = p.write(step, dst)
    for reverse in steps:
        if reverse.source.system is dst and reverse.filter is not None and reverse.filter.flag:
            on: Scalar = "true" if dst is HS else True
            w.values[reverse.filter.flag] = on
            w.decisions.append(FieldDecision(step.name, "", reverse.filter.flag, None, on, "join_sync_set"))
            p.proj[dst][reverse.filter.flag] = on


def _constants(p: _Planning, step: Step) -> None:
    """The step's ``on_create`` values on the record it creates (a mapped value with a value wins)."""
    dst = step.target.system
    w = p.write(step, dst)
    for target, value in step.on_create.items():
        w.values[target] = value
        w.decisions.append(FieldDecision(step.name, "", target, None, value, "on_create"))
        p.proj[dst][target] = value


def _fired(p: _Planning) -> tuple[RuleEffect, ...]:
    """The rules whose field changed (since the link's last sync; any value on first sync) to the value
    they wait for, each on the related records the pair's associations name once the writes land. A related
    record not linked yet (a pending association) keeps the trigger's last-synced fingerprint, so the rule
    fires again when the pair is planned once that record is linked."""
    effects: list[RuleEffect] = []
    pending = {pd.key for pd in p.pending}
    types = tracked_fields(p.config, p.state.pair)
    for rule in p.config.rules_for(p.state.pair):
        record = p.state.record(rule.when.system)
        if (
            record is None
            or _norm(_as_text(record.values.get(rule.when.field))) != _norm(_as_text(rule.when.equals))
            or not p.changed(rule.when.system, rule.when.field, types[rule.when.system][rule.when.field])
        ):
            continue
        for key in rule.on.associations:
            related = p.proj[rule.on.system].get(ASSOCIATION_PREFIX + key)
            if key in pending:
                p.frozen.add((rule.when.system, rule.when.field))
            if related is None or is_empty(related):
                continue
            # ``company:5`` names a HubSpot object first, ``parentaccountid:account`` a Dataverse table last
            object_type = key.split(":")[0 if rule.on.system is HS else 1]
            effects.append(
                RuleEffect(
                    rule=rule.name,
                    system=rule.on.system,
                    object_type=object_type,
                    object_id=str(related),
                    values=rule.set,
                    allow_backwards=rule.allow_backwards,
                )
            )
    return tuple(effects)


def _as_text(value: Scalar) -> Scalar:
    """A value as text, as HubSpot sends values: Dataverse's ``1`` and ``true`` compare as "1", "true"."""
    return value if isinstance(value, str) or value is None else str(value).lower()


def _refusal(p: _Planning, step: Step, source_values: Mapping[str, Scalar], *, creating: bool) -> str | None:
    """Why this step does not run for this pair now, if it does not."""
    if not passes(step.filter, source_values):
        return "not_in_sync_set"
    if not creating:
        return None
    checks = (
        (p.state.link is not None, "counterpart_deleted"),
        (p.state.match.ambiguous > 0, "ambiguous_match"),
        (not step.create, "create_disabled"),
        (
            match_key(step.match, source_values, side="source") is None and not step.match.create_when_empty,
            "empty_match_key",
        ),
    )
    return next((reason for failed, reason in checks if failed), None)


def _freeze(p: _Planning, step: Step) -> None:
    """A step that did not run keeps its source fields' last-synced fingerprints, so the changes it
    skipped (e.g. while the sync flag was off) still count as changes when it runs again."""
    src = step.source.system
    for f in step.record_fields():
        p.frozen.add((src, f.source))
    for am in step.associations:
        p.frozen.add((src, ASSOCIATION_PREFIX + am.on(src)))


def _reverse(steps: tuple[Step, ...], step: Step, f: FieldMap) -> Step | None:
    """The step that maps this field the other way, if any (the field is then mapped both ways)."""
    for other in steps:
        if other.source.system is step.target.system and any(
            g.source == f.target and g.target == f.source for g in other.record_fields()
        ):
            return other
    return None


def _maps_back(steps: tuple[Step, ...], step: Step, am: AssociationMap) -> bool:
    """Does another step map this association the other way (it is then mapped both ways)?"""
    src, dst = step.source.system, step.target.system
    return any(
        other.source.system is dst
        and any(b.on(dst) == am.on(dst) and b.on(src) == am.on(src) for b in other.associations)
        for other in steps
    )


def _reverse_field(reverse: Step, f: FieldMap) -> FieldMap | None:
    return next((g for g in reverse.record_fields() if g.source == f.target and g.target == f.source), None)


def _policy(config: SyncConfig, step: Step, f: FieldMap, reverse: Step) -> ConflictPolicy:
    """One policy per two-way field, whichever direction asks: a field override on either mapping (the
    earlier step's first), else the earlier step's policy. Asking from both sides must give one answer."""
    g = _reverse_field(reverse, f)
    order = [s.name for s in config.steps]
    pairs = [(step, f), (reverse, g)]
    pairs.sort(key=lambda sf: order.index(sf[0].name))
    for _, mapping in pairs:
        if mapping is not None and mapping.conflict is not None:
            return mapping.conflict
    return pairs[0][0].conflict


def _allows_empty(reverse: Step, f: FieldMap) -> bool:
    """Does the reverse mapping of ``f`` let an empty value overwrite?"""
    return any(
        g.allow_empty for g in reverse.record_fields() if g.source == f.target and g.target == f.source
    )


def _winner(p: _Planning, policy: ConflictPolicy, step: Step, reverse: Step) -> SourceSystem:
    if policy is ConflictPolicy.HUBSPOT:
        return HS
    if policy is ConflictPolicy.DYNAMICS:
        return DV
    if policy is ConflictPolicy.NEWEST:
        a, b = p.state.record(step.source.system), p.state.record(step.target.system)
        if (
            a is not None
            and b is not None
            and a.modified_at
            and b.modified_at
            and a.modified_at != b.modified_at
        ):
            return step.source.system if a.modified_at > b.modified_at else step.target.system
    order = [s.name for s in p.config.steps]
    earlier = step if order.index(step.name) < order.index(reverse.name) else reverse
    return earlier.source.system


def _plan_field(p: _Planning, step: Step, f: FieldMap, steps: tuple[Step, ...], *, creating: bool) -> None:
    src, dst = step.source.system, step.target.system
    converted = convert(
        p.proj[src].get(f.source),
        f,
        source_system=src,
        option_sets=p.config.option_sets,
        creating=creating,
        lookup=p.lookups.get(f.lookup, NO_LOOKUP) if f.lookup else NO_LOOKUP,
    )
    if not isinstance(converted, Converted):
        p.skips.append(Skip(step.name, converted.reason, f.target))
        return
    desired = converted.value
    current = p.proj[dst].get(f.target)
    if same(desired, current, f.target_type, dst):
        return
    if not _flows(p, step, f, steps, creating=creating):
        return
    rule = "create" if creating else "push" if p.state.pushed is src else _contest(p, step, f, steps, current)
    if rule is None:
        return
    if is_empty(desired):
        if creating:
            return
        if not is_empty(current) and not f.allow_empty:
            p.skips.append(Skip(step.name, "empty_not_overwritten", f.target))
            return
    w = p.write(step, dst)
    w.values[f.target] = desired
    w.decisions.append(FieldDecision(step.name, f.source, f.target, current, desired, rule))
    p.proj[dst][f.target] = desired


def _flows(p: _Planning, step: Step, f: FieldMap, steps: tuple[Step, ...], *, creating: bool) -> bool:
    """May the source's value go over the target's in this pass (before any conflict rule)? When the
    source changed it since the last sync, or the source was pushed; never into a pushed side a field the
    two sides map both ways."""
    src, dst = step.source.system, step.target.system
    pushed = p.state.pushed
    if pushed is dst and _reverse(steps, step, f) is not None:
        return False  # the pushed side's value stands
    return creating or pushed is src or p.changed(src, f.source, f.source_type)


def _contest(p: _Planning, step: Step, f: FieldMap, steps: tuple[Step, ...], current: Scalar) -> str | None:
    """The rule by which the source's change may overwrite the target, or None when the target wins a
    conflict (both sides changed a field mapped both ways since the last sync)."""
    src, dst = step.source.system, step.target.system
    reverse = _reverse(steps, step, f)
    if reverse is None or not p.changed(dst, f.target, f.target_type):
        return "changed_on_source"
    policy = _policy(p.config, step, f, reverse)
    winner = _winner(p, policy, step, reverse)
    if winner is not src and is_empty(current) and not _allows_empty(reverse, f):
        winner = src  # the winner holds nothing, and empty never overwrites: the value flows
    hs_prop, dv_prop = (f.source, f.target) if src is HS else (f.target, f.source)
    if p.state.link is not None and (hs_prop, dv_prop) not in p.conflict_seen:
        p.conflict_seen.add((hs_prop, dv_prop))
        p.conflicts.append(Conflict(step.name, f.target, winner, policy, hs_prop))
    return f"conflict:{policy}" if winner is src else None


def _plan_association(p: _Planning, step: Step, am: AssociationMap, *, creating: bool) -> None:
    src, dst = step.source.system, step.target.system
    key_src, key_dst = ASSOCIATION_PREFIX + am.on(src), ASSOCIATION_PREFIX + am.on(dst)
    related = p.proj[src].get(key_src)
    if related is None or is_empty(related):
        return  # clearing is left alone: only associations this daemon set may be removed
    counterpart = p.resolve(src, am.related_object(src), str(related))
    if counterpart is None:
        p.pending.append(Pending(step.name, am.on(dst), src, am.related_object(src), str(related)))
        p.unresolved.add((src, key_src))
        p.skips.append(Skip(step.name, "association_not_linked", am.on(dst)))
        return
    current = p.proj[dst].get(key_dst)
    if current == counterpart:
        return
    pushed = p.state.pushed
    if pushed is dst and _maps_back(p.config.steps_for(p.state.pair), step, am):
        return  # the pushed side's association stands
    if not creating and pushed is not src and not p.changed(src, key_src, ValueType.STRING):
        return
    rule = "create" if creating else "push" if pushed is src else "association"
    w = p.write(step, dst)
    w.associations[am.on(dst)] = counterpart
    w.decisions.append(FieldDecision(step.name, key_src, key_dst, current, counterpart, rule))
    p.proj[dst][key_dst] = counterpart


def _stamp_counterpart_ids(p: _Planning) -> None:
    """Each record of a pair holds the id of its counterpart (`COUNTERPART_ID`) where it has that property:
    HubSpot's timeline view in Dynamics reads it, and the gateways key creates on it.

    A create carries it already (the gateways write the ``origin_id`` of a `WriteOp`). A record matched on
    first sync (no link yet) gets it in that sync's write, made for it alone when nothing else is written:
    one write per side, once. After that it is set only inside a write to that side the sync makes anyway,
    so it is never a write of its own again. A record whose read shows no such property (it is absent from
    the answer, unlike a property with no value) is one the target cannot hold it on: left alone."""
    if not p.ran:
        return  # no step runs for this pair now: nothing is synced, nothing stamped
    for system in (HS, DV):
        record, other = p.state.record(system), p.state.record(system.other)
        if record is None or other is None:
            continue
        prop = COUNTERPART_ID[system]
        if prop not in record.values:
            continue
        current = record.values[prop]
        if isinstance(current, str) and current.strip().lower() == other.object_id.lower():
            continue
        written = p.writes.get(system)
        if p.state.link is not None and (written is None or not written.values):
            continue
        step = next((s for s in p.ran if s.target.system is system), p.ran[0])
        w = p.write(step, system)
        w.values[prop] = other.object_id
        w.decisions.append(FieldDecision(step.name, "", prop, current, other.object_id, "counterpart_id"))


def _stamp_sync_time(p: _Planning) -> None:
    """`SourceKind.SYNC_TIME` fields of the steps that ran: set to ``now`` inside a write to their side that
    sets something else (an update with values, or a create), never as a write of their own."""
    for step in p.ran:
        dst = step.target.system
        w = p.writes.get(dst)
        if w is None or not (w.values or w.kind is WriteKind.CREATE):
            continue
        for f in step.daemon_fields():
            converted = convert_time(p.now, f, target_system=dst)
            if not isinstance(converted, Converted):
                p.skips.append(Skip(step.name, converted.reason, f.target))
                continue
            old = p.proj[dst].get(f.target)
            w.values[f.target] = converted.value
            w.decisions.append(
                FieldDecision(step.name, f.source, f.target, old, converted.value, "sync_time")
            )
            p.proj[dst][f.target] = converted.value
            if step.name not in w.steps:
                w.steps.append(step.name)


def _after(p: _Planning) -> dict[SourceSystem, dict[str, str]]:
    types = tracked_fields(p.config, p.state.pair)
    out: dict[SourceSystem, dict[str, str]] = {}
    for system in (HS, DV):
        if not p.exists(system):
            continue
        written = p.writes.get(system)
        link = p.state.link
        fields: dict[str, str] = {}
        for prop, value_type in types[system].items():
            if (system, prop) in p.unresolved:
                continue
            touched = written is not None and (
                prop in written.values
                or (
                    prop.startswith(ASSOCIATION_PREFIX)
                    and prop[len(ASSOCIATION_PREFIX) :] in written.associations
                )
            )
            if (system, prop) in p.frozen and not touched:
                synced = link.side(system).fields.get(prop) if link is not None else None
                if synced is not None:
                    fields[prop] = synced.fingerprint
                continue
            fields[prop] = fingerprint(canonical(p.proj[system].get(prop), value_type, system))
        out[system] = fields
    return out
