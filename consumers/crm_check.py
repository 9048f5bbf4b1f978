"""The configuration checked against both CRMs' metadata (HubSpot's mapping rules: each target once, types
compatible, no read-only targets; and every option value the configuration names exists).

Pure: `cdc.crm_metadata` reads the fields (`Field`) of the objects the enabled steps touch; this module
says what is wrong, one line per problem naming the step and the field row as the loader does
(``step 'x' field 3 ('a' -> 'b'): ...``). Only enabled steps are checked: a disabled one may name fields a
portal does not have yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from consumers.config import OWNER, FieldMap, OptionSet, Step, SyncConfig, ValueType
from consumers.ports import FieldInfo
from streams.keys import SourceSystem

__all__ = ["Fields", "check_against_crm", "fields_needed"]


Fields = Mapping[tuple[SourceSystem, str], Mapping[str, FieldInfo]]
"""(system, object type or table) -> field name -> its metadata; an object absent was not read."""

_KINDS: dict[ValueType, frozenset[str]] = {
    # A lookup column takes a record id as text (the gateway binds it), hence Lookup, Owner and Customer.
    ValueType.STRING: frozenset(
        {"string", "String", "Memo", "Uniqueidentifier", "EntityName", "Lookup", "Owner", "Customer"}
    ),
    ValueType.NUMBER: frozenset({"number", "Integer", "BigInt", "Decimal", "Double", "Money"}),
    ValueType.INTEGER: frozenset({"number", "Integer", "BigInt"}),
    ValueType.BOOL: frozenset({"bool", "enumeration", "Boolean"}),
    ValueType.DATE: frozenset({"date", "datetime", "DateTime"}),
    ValueType.DATETIME: frozenset({"date", "datetime", "DateTime"}),
    ValueType.OPTION: frozenset(
        {"enumeration", "bool", "Picklist", "State", "Status", "Boolean", "Virtual", "MultiSelectPicklist"}
    ),
}
"""The CRM field kinds a value type may be written to."""
_OWNER_KINDS = frozenset({"enumeration", "string", "Owner", "Lookup"})
"""What a ``lookup: owner`` row writes an owner id to: HubSpot's ``hubspot_owner_id`` is an enumeration
whose options are the owners (developers.hubspot.com, "Owners"), Dataverse's ``ownerid`` an Owner lookup."""


def _metadata_name(system: SourceSystem, name: str) -> str:
    """The field's name in its CRM's metadata: a Dataverse lookup's value property ``_<name>_value`` is the
    attribute ``<name>`` (Learn, Web API "Lookup properties")."""
    if system is SourceSystem.DATAVERSE and name.startswith("_") and name.endswith("_value"):
        return name.removeprefix("_").removesuffix("_value")
    return name


def fields_needed(config: SyncConfig) -> dict[tuple[SourceSystem, str], set[str]]:
    """(system, object) -> the fields whose options the check needs (targets and sources naming a set)."""
    needed: dict[tuple[SourceSystem, str], set[str]] = {}
    for step in config.enabled_steps():
        for end in (step.source, step.target):
            needed.setdefault((end.system, end.object), set())
        for f in step.record_fields():
            if f.options is not None:
                needed[(step.source.system, step.source.object)].add(f.source)
                needed[(step.target.system, step.target.object)].add(f.target)
    return needed


def check_against_crm(
    config: SyncConfig, fields: Fields, lines: Mapping[tuple[str, int], int] | None = None
) -> list[str]:
    """Every problem of ``config``'s enabled steps against ``fields``; empty when it may run. ``lines``:
    (step name, field row) -> its line in the YAML (`consumers.loader.field_lines`), named when known."""
    lines = lines or {}
    return [problem for step in config.enabled_steps() for problem in _step(config, step, fields, lines)]


def _step(
    config: SyncConfig, step: Step, fields: Fields, lines: Mapping[tuple[str, int], int]
) -> Iterator[str]:
    targets = fields.get((step.target.system, step.target.object))
    sources = fields.get((step.source.system, step.source.object))
    seen: dict[str, int] = {}
    for n, f in enumerate(step.fields, start=1):
        if not f.enabled:
            continue
        line = lines.get((step.name, n))
        at = f" at line {line}" if line else ""
        where = f"step {step.name!r} field {n}{at} ({f.source!r} -> {f.target!r})"
        if f.target in seen:
            yield f"{where}: target {f.target!r} is written by field {seen[f.target]} too; map each once"
        seen.setdefault(f.target, n)
        if targets is None:
            continue
        target = targets.get(_metadata_name(step.target.system, f.target))
        if target is None:
            hint = " (custom: `cdc provision` creates it)" if f.custom else ""
            yield f"{where}: {step.target} has no field {f.target!r}{hint}"
            continue
        if not target.writable:
            yield f"{where}: {step.target}.{f.target} is read-only"
        write_type = ValueType.STRING if f.lookup is not None else f.target_type
        kinds = _OWNER_KINDS if f.lookup == OWNER else _KINDS[write_type]
        if target.kind not in kinds:
            yield f"{where}: a {write_type} cannot be written to {step.target}.{f.target} ({target.kind})"
        option_set = config.option_sets.get(f.options) if f.options else None
        if option_set is not None:
            source = (
                sources.get(_metadata_name(step.source.system, f.source))
                if sources is not None and not f.daemon_written
                else None
            )
            yield from _unknown_options(where, step, f, option_set, source=source, target=target)


def _unknown_options(
    where: str, step: Step, f: FieldMap, option_set: OptionSet, *, source: FieldInfo | None, target: FieldInfo
) -> Iterator[str]:
    """Values the set lists for a side that the side's field does not. A live set's labels are read from
    the CRMs themselves; overrides go one way only, so neither is checked here."""
    if option_set.live:
        return
    for field, end, name in ((source, step.source, f.source), (target, step.target, f.target)):
        if field is None or field.options is None:
            continue
        unknown = sorted(set(_side(option_set, end.system)) - field.options)
        if unknown:
            yield (
                f"{where}: option set {f.options!r} lists value(s) {', '.join(unknown)} that "
                f"{end}.{name} does not have"
            )


def _side(option_set: OptionSet, system: SourceSystem) -> Mapping[str, str]:
    return option_set.hubspot if system is SourceSystem.HUBSPOT else option_set.dataverse
