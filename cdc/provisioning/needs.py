"""What a sync configuration needs in each CRM: custom HubSpot properties, webhook subscriptions, and custom
Dataverse columns. Pure: a function of the `SyncConfig`, no I/O, so it is tested in milliseconds.

Derivation, in order:

1. **Writes.** Every enabled field map of an enabled step marked ``custom`` names a property/column the
   integration creates on the step's target object, typed by the map's ``target_type`` (a ``lookup`` row is
   text) and, for an option type, with the option set's options on that side.
2. **Reads.** A source field of an enabled step that is one of ours (the ``d365_`` / ``cdc_`` prefix of
   ``default_mappings.md`` section 0, or a custom target somewhere in the configuration) is needed too,
   typed by ``source_type``: e.g. ``d365_street_address_2`` read by step 2. Writers come first, so a
   property's label is the one its writer gives it. A daemon-written row (``source_kind: sync_time``,
   step L2's "Last CRM Sync Date") reads nothing, so it needs no source column.
3. **Flags and ids** (section 3): each enabled step's ``filter.flag`` on its source object (HubSpot
   ``bool``/``booleancheckbox``, Dataverse ``Boolean``); ``cdc_hubspotid`` (String 20, and an alternate
   key of its own) on every Dataverse table an enabled step touches, and ``cdc_d365id`` (text, unique
   valued) on every HubSpot object one touches. Creates key on them: the record created in one CRM holds
   the id of the record it copies, so the same create sent twice upserts one record (see the gateways).
4. **Webhook subscriptions** for every HubSpot object an enabled step touches: creation, deletion, merge,
   restore, associationChange (and ``contact.privacyDeletion``), plus one propertyChange per property the
   enabled steps read from HubSpot (fields, match key, flag, criteria), except those HubSpot refuses to
   subscribe (``hubspot.md`` section 1.3).

The same name on the same object needed with two different types is a configuration problem: the first
type wins and the clash is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from cdc.provisioning.specs import STRING_MAX_LENGTH, ColumnSpec, PropertySpec, SubscriptionSpec
from consumers.config import (
    DATAVERSE_ID_PROPERTY,
    HUBSPOT_ID_COLUMN,
    FieldMap,
    OptionSet,
    Step,
    SyncConfig,
    ValueType,
)
from consumers.forms import CONVERSION_PROPERTIES
from streams.keys import SourceSystem

__all__ = [
    "DATAVERSE_PREFIX",
    "HUBSPOT_ID_COLUMN",
    "HUBSPOT_PREFIX",
    "Needs",
    "needs_of",
]

HUBSPOT_PREFIX = "d365_"
DATAVERSE_PREFIX = "cdc_"
HUBSPOT_ID_LENGTH = 20
UNSUBSCRIBABLE = frozenset({"hs_lastmodifieddate", "num_unique_conversion_events"})
OBJECT_ACTIONS = ("creation", "deletion", "merge", "restore", "associationChange")
PRIVACY_DELETION_OBJECTS = frozenset({"contact"})

_FLAG_LABELS = {
    "sync_to_d365": "Sync to D365",
    "sync_to_d365_lead": "Sync to D365 Lead",
    "cdc_synctohubspot": "Sync to HubSpot",
}
_HUBSPOT_TYPES: dict[ValueType, tuple[str, str]] = {
    ValueType.STRING: ("string", "text"),
    ValueType.NUMBER: ("number", "number"),
    ValueType.INTEGER: ("number", "number"),
    ValueType.DATE: ("date", "date"),
    ValueType.DATETIME: ("datetime", "date"),
    ValueType.BOOL: ("bool", "booleancheckbox"),
    ValueType.OPTION: ("enumeration", "select"),
}
_YES_NO = (("true", "Yes"), ("false", "No"))
_NOTES = re.compile(r"\([^)]*\)|\*")


@dataclass(frozen=True)
class Needs:
    properties: tuple[PropertySpec, ...]
    columns: tuple[ColumnSpec, ...]
    subscriptions: tuple[SubscriptionSpec, ...]
    problems: tuple[tuple[SourceSystem, str, str, str], ...] = ()
    """(system, object, name, why): the configuration asks for one name with two types."""


_Spec = TypeVar("_Spec", PropertySpec, ColumnSpec)


def _label(text: str, name: str, *, side: str) -> str:
    """The seed label of one side: ``"Created On -> D365 Created On*"`` is ``D365 Created On`` for the target,
    ``Created On`` for the source; notes in parentheses and the seed's ``*`` go."""
    source, arrow, target = text.partition("->")
    part = target if arrow and side == "target" else source
    cleaned = " ".join(_NOTES.sub("", part).split())
    return cleaned or name


@dataclass
class _Collector:
    config: SyncConfig
    properties: dict[tuple[str, str], PropertySpec] = field(default_factory=dict)
    columns: dict[tuple[str, str], ColumnSpec] = field(default_factory=dict)
    problems: list[tuple[SourceSystem, str, str, str]] = field(default_factory=list)

    def option_set(self, fm: FieldMap) -> OptionSet | None:
        return self.config.option_sets.get(fm.options) if fm.options else None

    def add_property(self, spec: PropertySpec) -> None:
        key = (spec.object, spec.name)
        have = self.properties.get(key)
        if have is None:
            self.properties[key] = spec
            return
        if have.type != spec.type:
            self.problems.append(
                (
                    SourceSystem.HUBSPOT,
                    spec.object,
                    spec.name,
                    f"{', '.join(spec.steps)} needs type {spec.type}, {', '.join(have.steps)} {have.type}",
                )
            )
        if not set(spec.steps) <= set(have.steps):
            self.properties[key] = _replace_steps(have, spec.steps)

    def add_column(self, spec: ColumnSpec) -> None:
        key = (spec.table, spec.name)
        have = self.columns.get(key)
        if have is None:
            self.columns[key] = spec
            return
        if have.kind != spec.kind:
            self.problems.append(
                (
                    SourceSystem.DATAVERSE,
                    spec.table,
                    spec.name,
                    f"{', '.join(spec.steps)} needs type {spec.kind}, {', '.join(have.steps)} {have.kind}",
                )
            )
        if not set(spec.steps) <= set(have.steps):
            self.columns[key] = _replace_steps(have, spec.steps)

    def add(self, step: Step, fm: FieldMap, *, side: str) -> None:
        system = (step.target if side == "target" else step.source).system
        if system is SourceSystem.HUBSPOT:
            self.add_property(self.property_for(step, fm, side=side))
        else:
            self.add_column(self.column_for(step, fm, side=side))

    def add_flag_and_id(self, step: Step) -> None:
        flag = step.filter.flag if step.filter is not None else None
        if flag:
            label = _FLAG_LABELS.get(flag, flag.replace("_", " ").capitalize())
            source, name = step.source, (step.name,)
            if source.system is SourceSystem.HUBSPOT:
                self.add_property(
                    PropertySpec(source.object, flag, label, "bool", "booleancheckbox", _YES_NO, name)
                )
            else:
                self.add_column(ColumnSpec(source.object, flag, label, "Boolean", steps=name))
        table = step.pair.dataverse
        self.add_column(
            ColumnSpec(
                table,
                HUBSPOT_ID_COLUMN,
                "HubSpot ID",
                "String",
                HUBSPOT_ID_LENGTH,
                steps=(step.name,),
                alternate_key=True,
            )
        )
        self.add_property(
            PropertySpec(
                step.pair.hubspot,
                DATAVERSE_ID_PROPERTY,
                "D365 ID",
                "string",
                "text",
                steps=(step.name,),
                unique=True,
            )
        )

    def property_for(self, step: Step, fm: FieldMap, *, side: str) -> PropertySpec:
        on_target = side == "target"
        value_type = fm.target_type if on_target else fm.source_type
        if on_target and fm.lookup is not None:
            value_type = ValueType.STRING
        kind, field_type = _HUBSPOT_TYPES[value_type]
        options: tuple[tuple[str, str], ...] = ()
        option_set = self.option_set(fm)
        if kind == "enumeration" and option_set is not None:
            options = tuple(option_set.hubspot.items())
        elif kind == "bool":
            options = _YES_NO
        endpoint = step.target if on_target else step.source
        name = fm.target if on_target else fm.source
        return PropertySpec(
            endpoint.object, name, _label(fm.label, name, side=side), kind, field_type, options, (step.name,)
        )

    def column_for(self, step: Step, fm: FieldMap, *, side: str) -> ColumnSpec:
        on_target = side == "target"
        value_type = fm.target_type if on_target else fm.source_type
        if on_target and fm.lookup is not None:
            value_type = ValueType.STRING
        table = (step.target if on_target else step.source).object
        name = fm.target if on_target else fm.source
        label = _label(fm.label, name, side=side)
        option_set = self.option_set(fm)
        column = ColumnSpec(table, name, label, "String", steps=(step.name,))
        if value_type is ValueType.STRING:
            length = fm.max_length if on_target else None
            kind = "Memo" if length is not None and length > STRING_MAX_LENGTH else "String"
            return replace(column, kind=kind, max_length=length)
        if value_type is ValueType.INTEGER:
            return replace(column, kind="Integer")
        if value_type is ValueType.NUMBER:
            return replace(column, kind="Decimal")
        if value_type in {ValueType.DATE, ValueType.DATETIME}:
            return replace(column, kind="DateTime", date_only=value_type is ValueType.DATE)
        options = self.dataverse_options(table, name, fm.options, option_set)
        if value_type is ValueType.BOOL:
            return replace(column, kind="Boolean", options=options)
        return replace(column, kind="Picklist", options=options)

    def dataverse_options(
        self, table: str, name: str, set_name: str | None, option_set: OptionSet | None
    ) -> tuple[tuple[int, str], ...]:
        options: list[tuple[int, str]] = []
        for value, label in (option_set.dataverse if option_set is not None else {}).items():
            try:
                options.append((int(value), label))
            except ValueError:
                self.problems.append(
                    (
                        SourceSystem.DATAVERSE,
                        table,
                        name,
                        f"option set {set_name!r}: Dataverse value {value!r} is not an integer",
                    )
                )
        return tuple(options)


def _replace_steps(spec: _Spec, steps: tuple[str, ...]) -> _Spec:
    return replace(spec, steps=tuple(dict.fromkeys((*spec.steps, *steps))))


def _ours(config: SyncConfig, system: SourceSystem, object_type: str) -> set[str]:
    """Names on this object that some step (enabled or not) creates as a custom target."""
    return {
        fm.target
        for step in config.steps
        if step.target.system is system and step.target.object == object_type
        for fm in step.fields
        if fm.custom
    }


def _is_ours(config: SyncConfig, system: SourceSystem, object_type: str, name: str) -> bool:
    prefix = HUBSPOT_PREFIX if system is SourceSystem.HUBSPOT else DATAVERSE_PREFIX
    return name.startswith(prefix) or name in _ours(config, system, object_type)


def _hubspot_reads(step: Step) -> Iterable[str]:
    """Every HubSpot property a HubSpot-source step reads: fields, match key, flag, criteria."""
    yield from (fm.source for fm in step.record_fields())
    yield step.match.source
    if step.filter is not None:
        if step.filter.flag:
            yield step.filter.flag
        yield from (c.field for c in step.filter.criteria)


def needs_of(config: SyncConfig) -> Needs:
    """Everything the enabled steps of ``config`` need, in step order (see the module docstring)."""
    steps = config.enabled_steps()
    out = _Collector(config)
    for step in steps:  # 1. writes
        for fm in step.active_fields():
            if fm.custom:
                out.add(step, fm, side="target")
    for step in steps:  # 2. reads
        for fm in step.record_fields():
            if _is_ours(config, step.source.system, step.source.object, fm.source):
                out.add(step, fm, side="source")
    for step in steps:  # 3. flags and ids
        out.add_flag_and_id(step)
    return Needs(
        properties=tuple(out.properties.values()),
        columns=tuple(out.columns.values()),
        subscriptions=_subscriptions(steps, forms=config.form_submissions is not None),
        problems=tuple(out.problems),
    )


def _subscriptions(steps: tuple[Step, ...], *, forms: bool = False) -> tuple[SubscriptionSpec, ...]:
    objects = list(dict.fromkeys(step.pair.hubspot for step in steps))
    reads: dict[str, set[str]] = {obj: set() for obj in objects}
    for step in steps:
        if step.source.system is SourceSystem.HUBSPOT:
            reads[step.source.object].update(_hubspot_reads(step))
    if forms:  # a submission shows as its contact's conversion properties changing (`consumers.forms`)
        reads.setdefault("contact", set()).update(CONVERSION_PROPERTIES)
        objects = list(dict.fromkeys([*objects, "contact"]))
    found: list[SubscriptionSpec] = []
    for obj in objects:
        found.extend(SubscriptionSpec(obj, action) for action in OBJECT_ACTIONS)
        if obj in PRIVACY_DELETION_OBJECTS:
            found.append(SubscriptionSpec(obj, "privacyDeletion"))
        found.extend(
            SubscriptionSpec(obj, "propertyChange", name) for name in sorted(reads[obj] - UNSUBSCRIBABLE)
        )
    return tuple(found)
