"""The sync configuration: ordered sync steps, field and association mappings, option sets, rules.

A YAML file validated by these models (`consumers.loader`); the defaults (`consumers/default_steps.yaml`)
restate the seeds' standard set-up row by row. Objects are named as the change events name them:
HubSpot ``contact``, ``company``, ``deal``; Dataverse logical names ``contact``, ``account``, ``lead``,
``opportunity``. Properties and columns by internal / logical name, never by label.

Vocabulary:

- a **step** copies fields of one object in one system to one object in the other (``source`` -> ``target``);
- a **pair** is the (HubSpot object, Dataverse object) two steps may share in opposite directions; a link
  (``streams.links``) joins one record of each;
- a **field map** copies one source property to one target property, converting between the two systems'
  value types, optionally through an **option set** matched by label.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from consumers.forms import FormSubmissions
from consumers.lifecycle import LIFECYCLE_PROPERTY, LIFECYCLE_STAGES
from streams.codec import Scalar
from streams.keys import SourceSystem

__all__ = [
    "COUNTERPART_ID",
    "DATAVERSE_ID_PROPERTY",
    "HUBSPOT_ID_COLUMN",
    "AssociationMap",
    "ConflictPolicy",
    "Criterion",
    "Endpoint",
    "FieldMap",
    "MatchRule",
    "NameFields",
    "OptionSet",
    "Pair",
    "Rule",
    "RuleTargets",
    "RuleTrigger",
    "SourceFilter",
    "SourceKind",
    "Step",
    "SyncConfig",
    "ValueType",
]

LEAD = "lead"
FORMATTED_VALUE = "formatted_value"
"""``FieldMap.lookup`` for a Dataverse lookup column read as the display name of the record it points to."""
OWNER_EMAIL = "owner_email"
"""``FieldMap.lookup`` for a HubSpot owner id written as the owner's email (the owners API)."""
OWNER = "owner"
"""``FieldMap.lookup`` for ownership: a HubSpot owner id <-> the Dataverse user with the same email
(`consumers.owners`); the Dataverse side is ``_ownerid_value``, the user's id."""
OWNER_COLUMN = "_ownerid_value"
LOOKUP_READS = {
    OWNER_EMAIL: (SourceSystem.HUBSPOT, "a HubSpot owner id"),
    FORMATTED_VALUE: (SourceSystem.DATAVERSE, "a Dataverse lookup column"),
}
"""What each lookup reads, and from which system: a step's source must be that system."""
HUBSPOT_ID_COLUMN = "cdc_hubspotid"
"""Dataverse: the id of the linked HubSpot record (``default_mappings.md`` section 3; `cdc provision` creates
it, with an alternate key). HubSpot's timeline view in Dynamics reads it; creates upsert by it."""
DATAVERSE_ID_PROPERTY = "cdc_d365id"
"""HubSpot: the id of the linked Dataverse record (a unique-valued property `cdc provision` creates)."""
COUNTERPART_ID = {SourceSystem.HUBSPOT: DATAVERSE_ID_PROPERTY, SourceSystem.DATAVERSE: HUBSPOT_ID_COLUMN}
"""Per system, the property/column holding the id of the record's counterpart in the other system: written
by the daemon on every linked record that has it (created, or matched on first sync)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValueType(StrEnum):
    """How a value is represented on one side. HubSpot sends every property as a string on the wire;
    Dataverse sends typed JSON. The planner converts between the two (`consumers.values`)."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    OPTION = "option"
    """An enumeration (HubSpot) or choice/picklist/state/status (Dataverse): translated by an option set."""


def _conflict(value: Any) -> Any:
    # YAML may say `conflict: {source_of_truth: hubspot}`; internally it is one string.
    if isinstance(value, dict) and set(value) == {"source_of_truth"}:
        return f"source_of_truth:{value['source_of_truth']}"
    return value


class ConflictPolicy(StrEnum):
    """Who wins a field mapped both ways when both sides changed it since the last sync."""

    STEP_ORDER = "step_order"
    """The earlier step's source wins (the seeds: HubSpot -> Dynamics steps run first)."""
    NEWEST = "newest"
    """The side modified most recently (source modification time) wins."""
    HUBSPOT = "source_of_truth:hubspot"
    DYNAMICS = "source_of_truth:dynamics"


Conflict = Annotated[ConflictPolicy, BeforeValidator(_conflict)]


class Endpoint(_Model):
    system: SourceSystem
    object: str = Field(min_length=1, description="Object type (HubSpot) or table logical name (Dataverse).")

    def __str__(self) -> str:
        return f"{self.system}.{self.object}"


class Pair(_Model):
    """The two object types a link joins."""

    hubspot: str
    dataverse: str

    def __str__(self) -> str:
        return f"{self.hubspot}~{self.dataverse}"

    def object_on(self, system: SourceSystem) -> str:
        return self.hubspot if system is SourceSystem.HUBSPOT else self.dataverse


class OptionSet(_Model):
    """The options of one enumerated field on each side, matched by label (case-insensitive, spaces
    collapsed).

    ``hubspot`` maps HubSpot internal values to labels, ``dataverse`` Dataverse integer values (as strings
    or ints) to labels. ``overrides`` maps a source value straight to a target value where labels do not
    match (e.g. opportunity status reason -> deal stage); a value with no counterpart skips the field.
    ``create_overrides`` does the same only when the step creates the target record, for a value that
    neither ``overrides`` nor the labels map (e.g. an open opportunity creates its deal in the first stage).
    """

    # YAML reads `1: Advertisement` with an int key; the values are identifiers, so numbers become strings.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    hubspot: dict[str, str] = Field(default_factory=dict)
    dataverse: dict[str, str] = Field(default_factory=dict)
    overrides: dict[str, str] = Field(
        default_factory=dict, description="source value -> target value, consulted before labels"
    )
    create_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="source value -> target value on create only, consulted after overrides and labels",
    )
    live: bool = Field(
        default=False,
        description="Read the labels from both CRMs' metadata at start and every sync.options_refresh_s "
        "(`consumers.live_options`); the labels written here stay for values the CRMs do not list.",
    )


class SourceKind(StrEnum):
    """Where a field map's value comes from."""

    RECORD = "record"
    """The source record's property/column named by ``source``."""
    SYNC_TIME = "sync_time"
    """Written by the daemon: the time of the write that syncs the pair (``default_mappings.md`` section 14
    item 5, "Last CRM Sync Date"). Set only inside a write the pair's sync makes anyway (an update or a
    create), never as a write of its own; the target is not tracked, so its echo is no change. ``source`` is
    then the kind's name: nothing is read."""


class FieldMap(_Model):
    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    source_kind: SourceKind = Field(
        default=SourceKind.RECORD,
        description="'record': the source property/column; 'sync_time': the time of the daemon's write.",
    )
    source_type: ValueType = ValueType.STRING
    target_type: ValueType = ValueType.STRING
    options: str | None = Field(default=None, description="Name of an option set in `option_sets`.")
    max_length: int | None = Field(default=None, ge=1, description="Target length; longer values skip.")
    allow_empty: bool = Field(
        default=False, description="An empty source value may overwrite a non-empty target value."
    )
    conflict: Conflict | None = Field(default=None, description="Overrides the step's conflict policy.")
    enabled: bool = True
    custom: bool = Field(
        default=False, description="The target property/column is created by the integration (provision)."
    )
    label: str = Field(default="", description="The seed's label, for people.")
    lookup: Literal["owner_email", "formatted_value", "owner"] | None = Field(
        default=None,
        description="'owner_email': a HubSpot owner id written as the owner's email (skipped when the "
        "owner is not found); 'formatted_value': a Dataverse lookup column read as the display name of the "
        "record it points to; 'owner': hubspot_owner_id <-> _ownerid_value, the user with the same email "
        "(skipped, counted, when there is none or it is disabled).",
    )

    @model_validator(mode="before")
    @classmethod
    def _daemon_source(cls, data: Any) -> Any:
        # A daemon-written row reads nothing: its `source` may be left out and names the kind.
        if (
            isinstance(data, dict)
            and data.get("source_kind") == SourceKind.SYNC_TIME
            and "source" not in data
        ):
            return {**data, "source": SourceKind.SYNC_TIME.value}
        return data

    @model_validator(mode="after")
    def _daemon_written(self) -> Self:
        if self.source_kind is SourceKind.RECORD:
            return self
        if self.source != self.source_kind.value:
            raise ValueError(f"a {self.source_kind} row reads no source field: leave `source` out")
        if self.target_type not in {ValueType.DATETIME, ValueType.DATE, ValueType.STRING}:
            raise ValueError(f"a {self.source_kind} row writes a time: target_type datetime, date or string")
        if self.options is not None or self.lookup is not None:
            raise ValueError(f"a {self.source_kind} row takes no option set and no lookup")
        return self

    @property
    def daemon_written(self) -> bool:
        """The daemon makes this value (`SourceKind`); no source record property is read."""
        return self.source_kind is not SourceKind.RECORD


class Criterion(_Model):
    field: str
    op: Literal["eq", "ne", "in", "not_empty", "empty"] = "eq"
    value: Any = None


class SourceFilter(_Model):
    """Which source records are in the sync set: a flag property/column (true-ish) and/or criteria."""

    flag: str | None = Field(default=None, description="A boolean property/column that puts a record in.")
    criteria: tuple[Criterion, ...] = ()


class NameFields(_Model):
    source: str = Field(min_length=1)
    target: str = Field(min_length=1)


class MatchRule(_Model):
    """How a record with no link finds its counterpart on first sync (`consumers.matching`)."""

    source: str
    target: str
    kind: Literal["email", "name", "domain"]
    strip_legal_suffixes: bool = False
    with_name: NameFields | None = Field(
        default=None, description="kind domain: the names (these fields) must agree as well as the domains."
    )
    create_when_empty: bool = Field(
        default=False, description="Create a counterpart even when the match key is empty."
    )

    @model_validator(mode="after")
    def _name_with_domain(self) -> Self:
        if self.with_name is not None and self.kind != "domain":
            raise ValueError(f"with_name goes with kind domain; this rule matches by {self.kind}")
        return self

    def target_fields(self) -> tuple[str, ...]:
        """The target fields a candidate's match key is read from."""
        return (self.target,) if self.with_name is None else (self.target, self.with_name.target)


class AssociationMap(_Model):
    """One association carried by a step: the HubSpot side is ``<object>:<association type id>``, the
    Dataverse side ``<lookup column>:<table it points to>``
    (e.g. ``company:1`` <-> ``parentcustomerid:account``).
    """

    hubspot: str = Field(pattern=r"^[a-z_0-9]+:\d+$")
    dataverse: str = Field(pattern=r"^[a-z_0-9]+:[a-z_0-9]+$")
    label: str = ""

    @property
    def hubspot_object(self) -> str:
        return self.hubspot.split(":", 1)[0]

    @property
    def hubspot_type_id(self) -> int:
        return int(self.hubspot.split(":", 1)[1])

    @property
    def dataverse_lookup(self) -> str:
        return self.dataverse.split(":", 1)[0]

    @property
    def dataverse_table(self) -> str:
        return self.dataverse.split(":", 1)[1]

    def on(self, system: SourceSystem) -> str:
        return self.hubspot if system is SourceSystem.HUBSPOT else self.dataverse

    def related_object(self, system: SourceSystem) -> str:
        return self.hubspot_object if system is SourceSystem.HUBSPOT else self.dataverse_table


class Step(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = ""
    enabled: bool = True
    source: Endpoint
    target: Endpoint
    filter: SourceFilter | None = None
    match: MatchRule
    fields: tuple[FieldMap, ...] = ()
    associations: tuple[AssociationMap, ...] = ()
    create: bool = Field(default=True, description="Create the counterpart when no match is found.")
    on_create: dict[str, Scalar] = Field(
        default_factory=dict, description="Constant values set on the records this step creates."
    )
    deletes: Literal["ignore", "propagate"] = "ignore"
    conflict: Conflict = ConflictPolicy.STEP_ORDER

    def __hash__(self) -> int:
        # Steps key lookups (`consumers.units`); ``on_create`` is a dict, so hash the identity, not it.
        return hash((self.name, self.source, self.target))

    @model_validator(mode="after")
    def _crosses_systems(self) -> Self:
        if self.source.system is self.target.system:
            raise ValueError(f"source and target are both {self.source.system}; a step crosses systems")
        return self

    @property
    def pair(self) -> Pair:
        hs, dv = (
            (self.source, self.target)
            if self.source.system is SourceSystem.HUBSPOT
            else (self.target, self.source)
        )
        return Pair(hubspot=hs.object, dataverse=dv.object)

    @property
    def is_lead_step(self) -> bool:
        return LEAD in (self.source.object, self.target.object)

    def active_fields(self) -> tuple[FieldMap, ...]:
        return tuple(f for f in self.fields if f.enabled)

    def record_fields(self) -> tuple[FieldMap, ...]:
        """The enabled field maps that copy a source record's value (all but the daemon-written ones)."""
        return tuple(f for f in self.fields if f.enabled and not f.daemon_written)

    def daemon_fields(self) -> tuple[FieldMap, ...]:
        """The enabled field maps whose value the daemon makes (`SourceKind.SYNC_TIME`)."""
        return tuple(f for f in self.fields if f.enabled and f.daemon_written)


class RuleTrigger(_Model):
    """A value a record of this object takes: the rule fires when ``field`` changes to ``equals``."""

    system: SourceSystem
    object: str = Field(min_length=1)
    field: str = Field(min_length=1)
    equals: Scalar


class RuleTargets(_Model):
    """The related records a rule writes to: the pair's associations on this system
    (``contact:3``, ``parentcontactid:contact``, as a step's association map names them)."""

    system: SourceSystem
    associations: tuple[str, ...] = Field(min_length=1)


class Rule(_Model):
    """When a synced record's value changes to ``when.equals``, set ``set`` on its related records
    (`consumers.lifecycle`): a won opportunity makes its contact and company customers. A HubSpot
    lifecycle stage never moves backwards in HubSpot's order unless ``allow_backwards``."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    when: RuleTrigger
    on: RuleTargets
    set: dict[str, Scalar] = Field(min_length=1)
    allow_backwards: bool = False

    def __hash__(self) -> int:
        return hash(self.name)  # ``set`` is a dict


def _owner_row(where: str, step: Step, field: FieldMap) -> None:
    """A ``lookup: owner`` row carries an owner id both ways: Dataverse's side is the user's id."""
    dataverse = field.source if step.source.system is SourceSystem.DATAVERSE else field.target
    if dataverse != OWNER_COLUMN:
        raise ValueError(
            f"{where}: lookup owner names the Dataverse owner as {OWNER_COLUMN!r} (the user's id), not "
            f"{dataverse!r}"
        )
    if field.options is not None or {field.source_type, field.target_type} != {ValueType.STRING}:
        raise ValueError(f"{where}: lookup owner takes no option set; both types are string")


class SyncConfig(_Model):
    """Steps in execution order, the option sets their fields name, and the rules."""

    steps: tuple[Step, ...]
    option_sets: dict[str, OptionSet] = Field(default_factory=dict)
    allow_leads_with_contacts: bool = Field(
        default=False,
        description="Run lead steps and contact steps together (the seeds strongly advise against it).",
    )
    rules: tuple[Rule, ...] = ()
    # --- form submissions (issue 19 part 1; `consumers.forms`): off unless configured ---
    form_submissions: FormSubmissions | None = None
    _steps_by_pair: dict[Pair, tuple[Step, ...]] = PrivateAttr(default_factory=dict)
    _pairs_of: dict[tuple[SourceSystem, str], tuple[Pair, ...]] = PrivateAttr(default_factory=dict)
    """`steps_for`, kept: asked for every change routed and planned, and the configuration is frozen."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [s.name for s in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique; repeated: {', '.join(dupes)}")
        for step in self.steps:
            for field in step.fields:
                where = f"step {step.name!r}, field {field.source!r} -> {field.target!r}"
                if field.options is not None and field.options not in self.option_sets:
                    raise ValueError(f"{where}: option set {field.options!r} is not defined in option_sets")
                source = step.source.system
                if field.lookup == OWNER:
                    _owner_row(where, step, field)
                elif field.lookup is not None and source is not LOOKUP_READS[field.lookup][0]:
                    reads = LOOKUP_READS[field.lookup][1]
                    raise ValueError(f"{where}: lookup {field.lookup} reads {reads}; the source is {source}")
        self._daemon_targets_unread()
        self._rules_consistent()
        enabled = [s for s in self.steps if s.enabled]
        leads = [s for s in enabled if s.is_lead_step]
        contacts = [
            s
            for s in enabled
            if not s.is_lead_step and s.pair == Pair(hubspot="contact", dataverse="contact")
        ]
        if leads and contacts and not self.allow_leads_with_contacts:
            raise ValueError(
                f"lead steps ({', '.join(s.name for s in leads)}) and contact steps "
                f"({', '.join(s.name for s in contacts)}) are both enabled; disable one set, or set "
                "allow_leads_with_contacts: true"
            )
        if leads:
            first_other = next((i for i, s in enumerate(enabled) if not s.is_lead_step), len(enabled))
            late = [s.name for s in enabled[first_other:] if s.is_lead_step]
            if late:
                raise ValueError(f"lead steps run first (as the seeds say); move {', '.join(late)} up")
        return self

    def _daemon_targets_unread(self) -> None:
        """A daemon-written target is the daemon's own: a step of its pair reading it would copy every
        stamp on, and take the stamp's echo for a user's change."""
        read = {
            (step.pair, step.source.system, f.source): step.name
            for step in self.steps
            for f in step.fields
            if not f.daemon_written
        }
        for step in self.steps:
            for f in step.fields:
                reader = read.get((step.pair, step.target.system, f.target)) if f.daemon_written else None
                if reader is not None:
                    raise ValueError(
                        f"step {step.name!r}, field {f.target!r}: the daemon writes it ({f.source_kind}); "
                        f"step {reader!r} may not read it"
                    )

    def _rules_consistent(self) -> None:
        """Rules name an object an enabled step syncs and associations its steps carry; constant HubSpot
        lifecycle stages (rules and ``on_create``) are stages HubSpot's order knows."""
        for step in self.steps:
            _known_stages(f"step {step.name!r}, on_create", step.target.system, step.on_create)
        names = [r.name for r in self.rules]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        for rule in self.rules:
            where = f"rule {rule.name!r}"
            pairs = self.pairs_of(rule.when.system, rule.when.object)
            if not pairs:
                raise ValueError(f"{where}: no enabled step syncs {rule.when.system}.{rule.when.object}")
            carried = {
                am.on(rule.on.system) for p in pairs for s in self.steps_for(p) for am in s.associations
            }
            if unknown := [a for a in rule.on.associations if a not in carried]:
                raise ValueError(
                    f"{where}: no step of {rule.when.object} carries the association(s) {', '.join(unknown)} "
                    f"on {rule.on.system} (known: {', '.join(sorted(carried)) or 'none'})"
                )
            _known_stages(f"{where}, set", rule.on.system, rule.set)

    def rules_for(self, pair: Pair) -> tuple[Rule, ...]:
        """The rules a change of this pair may fire."""
        return tuple(r for r in self.rules if pair.object_on(r.when.system) == r.when.object)

    def enabled_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.enabled)

    def __eq__(self, other: object) -> bool:
        """Equal configurations hold equal fields, whatever `steps_for` has kept so far."""
        if not isinstance(other, SyncConfig):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = _Model.__hash__

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy (steps changed, perhaps): its steps are looked up afresh."""
        copied = super().model_copy(update=update, deep=deep)
        copied._steps_by_pair = {}
        copied._pairs_of = {}
        return copied

    def steps_for(self, pair: Pair) -> tuple[Step, ...]:
        """The enabled steps of a pair, in execution order."""
        found = self._steps_by_pair.get(pair)
        if found is None:
            found = self._steps_by_pair[pair] = tuple(s for s in self.steps if s.enabled and s.pair == pair)
        return found

    def pairs(self) -> tuple[Pair, ...]:
        seen: dict[Pair, None] = {}
        for step in self.enabled_steps():
            seen.setdefault(step.pair, None)
        return tuple(seen)

    def pairs_of(self, system: SourceSystem, object_type: str) -> tuple[Pair, ...]:
        """The pairs a record of this object in this system takes part in (asked for every change routed
        and applied: kept, as `steps_for` is)."""
        found = self._pairs_of.get((system, object_type))
        if found is None:
            found = tuple(p for p in self.pairs() if p.object_on(system) == object_type)
            self._pairs_of[(system, object_type)] = found
        return found


def _known_stages(where: str, system: SourceSystem, values: dict[str, Scalar]) -> None:
    stage = values.get(LIFECYCLE_PROPERTY)
    if system is SourceSystem.HUBSPOT and LIFECYCLE_PROPERTY in values and stage not in LIFECYCLE_STAGES:
        raise ValueError(
            f"{where}: {LIFECYCLE_PROPERTY} {stage!r} is not a HubSpot lifecycle stage "
            f"(one of {', '.join(LIFECYCLE_STAGES)})"
        )
