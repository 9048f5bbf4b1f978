"""The portal's records: properties (built-in and custom), unique values, archive/restore, merges.

Every write goes through one lock and reports what it changed as :class:`Change` values, which the app
turns into webhook events. Ids are int64-sized numbers drawn from the seeded generator, sent as strings
in API bodies (fact sheet §3.1). A merge creates a record with a new id and both old ids resolve to it
(§6, today's behaviour). Archived records keep their data (restorable) but free their unique values.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdc.sandbox.clock import Clock
from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.associations import Associations, Edge, known_types
from cdc.sandbox.hubspot.objects import (
    OBJECT_TYPES,
    ObjectType,
    PropertyDef,
    PropertyGroup,
    builtin_groups,
    builtin_properties,
)
from cdc.sandbox.hubspot.options import LIFECYCLE_STAGES

__all__ = ["Actor", "Change", "Record", "Store", "iso", "to_ms"]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_ms(value: str) -> int | None:
    """A datetime property value (ms epoch or ISO-8601) as ms epoch; None when it is neither."""
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class Actor:
    """Who wrote: ``INTEGRATION`` + the app id for API writes, ``CRM_UI`` + ``userId:<n>`` for users."""

    change_source: str
    source_id: str


@dataclass(frozen=True)
class Change:
    """One thing a webhook reports; ``extra`` holds the merge and association fields by their JSON names
    (a name starting with ``_`` is for the dispatcher, which picks the fields of the payload's format)."""

    kind: str  # creation, propertyChange, deletion, restore, merge, associationChange, privacyDeletion
    object_type: ObjectType
    object_id: str
    occurred_at: int
    actor: Actor
    property_name: str | None = None
    property_value: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    id: str
    type: ObjectType
    properties: dict[str, str]
    history: dict[str, list[dict[str, Any]]]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None

    @property
    def archived(self) -> bool:
        return self.archived_ms is not None


class Store:
    def __init__(self, clock: Clock, rng: random.Random, emit: Callable[[list[Change]], None]) -> None:
        self.clock = clock
        self._rng = rng
        self._emit = emit
        self.lock = threading.RLock()
        self.properties = {name: builtin_properties(ot) for name, ot in OBJECT_TYPES.items()}
        self.property_groups = {name: builtin_groups(ot) for name, ot in OBJECT_TYPES.items()}
        self.records: dict[str, dict[str, Record]] = {name: {} for name in OBJECT_TYPES}
        self.aliases: dict[str, dict[str, str]] = {name: {} for name in OBJECT_TYPES}
        self._unique: dict[str, dict[str, dict[str, str]]] = {name: {} for name in OBJECT_TYPES}
        self.associations = Associations()
        self._next_id = rng.randrange(10**11, 9 * 10**11)

    # ---- ids and lookups -------------------------------------------------------------------------
    def new_id(self) -> str:
        with self.lock:
            self._next_id += self._rng.randrange(1, 64)
            return str(self._next_id)

    def resolve(self, ot: ObjectType, object_id: str) -> str:
        return self.aliases[ot.name].get(object_id, object_id)

    def get(
        self, ot: ObjectType, object_id: str, *, id_property: str | None = None, archived: bool = False
    ) -> Record | None:
        """The record by id (old merged ids resolve) or by a unique property; archived ones when asked."""
        with self.lock:
            if id_property and id_property != "hs_object_id":
                found = self._unique[ot.name].get(id_property, {}).get(_norm(id_property, object_id))
                if found is None:
                    return None
                object_id = found
            record = self.records[ot.name].get(self.resolve(ot, object_id))
            if record is None or record.archived != archived:
                return None
            return record

    def require(self, ot: ObjectType, object_id: str, *, id_property: str | None = None) -> Record:
        record = self.get(ot, object_id, id_property=id_property)
        if record is None:
            raise errors.object_not_found(object_id)
        return record

    def all(self, ot: ObjectType, *, archived: bool = False) -> list[Record]:
        with self.lock:
            return sorted(
                (r for r in self.records[ot.name].values() if r.archived == archived), key=lambda r: int(r.id)
            )

    def is_unique(self, ot: ObjectType, name: str) -> bool:
        prop = self.properties[ot.name].get(name)
        return prop is not None and prop.has_unique_value

    # ---- properties ------------------------------------------------------------------------------
    def add_property(self, ot: ObjectType, prop: PropertyDef) -> PropertyDef:
        with self.lock:
            if prop.name in self.properties[ot.name]:
                raise errors.property_exists(prop.name)
            prop.created_at = iso(self.clock.epoch_ms())
            self.properties[ot.name][prop.name] = prop
            return prop

    def add_property_group(self, ot: ObjectType, group: PropertyGroup) -> PropertyGroup:
        with self.lock:
            if group.name in self.property_groups[ot.name]:
                raise errors.property_group_exists(group.name)
            self.property_groups[ot.name][group.name] = group
            return group

    def _validate(self, ot: ObjectType, values: dict[str, Any], *, internal: bool = False) -> dict[str, str]:
        """Writable values as HubSpot stores them (strings), or one 400 listing every problem.

        ``internal``: HubSpot itself writes (its calculations, the admin seed), so read-only values pass.
        """
        known = self.properties[ot.name]
        problems: list[tuple[str, str, str]] = []
        clean: dict[str, str] = {}
        for name, raw in values.items():
            prop = known.get(name)
            if prop is None:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if prop.read_only and not internal:
                problems.append(
                    (name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
                )
                continue
            value = "" if raw is None else (str(raw).lower() if isinstance(raw, bool) else str(raw))
            problem = _check_value(prop, value)
            if problem:
                problems.append((name, problem[0], problem[1]))
                continue
            clean[name] = _normalise(prop, value)
        if problems:
            raise errors.invalid_property_values(problems)
        return clean

    def check(self, ot: ObjectType, values: dict[str, Any], record_id: str = "") -> dict[str, str]:
        """What a write of ``values`` would store, or the error it would get; changes nothing."""
        with self.lock:
            clean = self._validate(ot, values)
            self._claim_unique(ot, record_id, clean)
            return clean

    # ---- writes ----------------------------------------------------------------------------------
    def _claim_unique(self, ot: ObjectType, record_id: str, values: dict[str, str]) -> None:
        for name, value in values.items():
            if not value or not self.is_unique(ot, name):
                continue
            owner = self._unique[ot.name].get(name, {}).get(_norm(name, value))
            if owner is not None and owner != record_id:
                raise errors.conflict(ot.label, owner)

    def _index(self, record: Record, old: dict[str, str]) -> None:
        for name in self.properties[record.type.name]:
            if not self.is_unique(record.type, name):
                continue
            index = self._unique[record.type.name].setdefault(name, {})
            if old.get(name) and index.get(_norm(name, old[name])) == record.id:
                del index[_norm(name, old[name])]
            if record.properties.get(name) and not record.archived:
                index[_norm(name, record.properties[name])] = record.id

    def _set(self, record: Record, name: str, value: str, now: int, actor: Actor) -> None:
        if value == "":
            record.properties.pop(name, None)
        else:
            record.properties[name] = value
        entry = {
            "value": value,
            "timestamp": iso(now),
            "sourceType": actor.change_source,
            "sourceId": actor.source_id,
        }
        record.history.setdefault(name, []).insert(0, entry)

    def create(
        self,
        ot: ObjectType,
        values: dict[str, Any],
        actor: Actor,
        *,
        emit: bool = True,
        internal: bool = False,
    ) -> Record:
        with self.lock:
            clean = {k: v for k, v in self._validate(ot, values, internal=internal).items() if v != ""}
            self._claim_unique(ot, "", clean)
            now = self.clock.epoch_ms()
            record = Record(self.new_id(), ot, {}, {}, now, now)
            system = {"hs_object_id": record.id, "createdate": iso(now), ot.last_modified: iso(now)}
            for name, value in {**system, **clean}.items():
                self._set(record, name, value, now, actor)
            self.records[ot.name][record.id] = record
            self._index(record, {})
            changes = [Change("creation", ot, record.id, now, actor)]
            changes += [Change("propertyChange", ot, record.id, now, actor, k, v) for k, v in clean.items()]
            if emit:
                self._emit(changes)
            return record

    def update(
        self,
        ot: ObjectType,
        object_id: str,
        values: dict[str, Any],
        actor: Actor,
        *,
        id_property: str | None = None,
        internal: bool = False,
    ) -> Record:
        with self.lock:
            record = self.require(ot, object_id, id_property=id_property)
            clean = self._validate(ot, values, internal=internal)
            if actor.change_source == "INTEGRATION":
                clean = _forward_only(record.properties, clean)
            changed = {k: v for k, v in clean.items() if record.properties.get(k, "") != v}
            if not changed:
                return record
            self._claim_unique(ot, record.id, changed)
            old = dict(record.properties)
            now = max(self.clock.epoch_ms(), record.updated_ms)
            for name, value in changed.items():
                self._set(record, name, value, now, actor)
            self._set(record, ot.last_modified, iso(now), now, actor)
            record.updated_ms = now
            self._index(record, old)
            self._emit(
                [Change("propertyChange", ot, record.id, now, actor, k, v) for k, v in changed.items()]
            )
            return record

    def archive(self, ot: ObjectType, object_id: str, actor: Actor) -> bool:
        """Soft delete; False when there was nothing to archive (HubSpot still answers 204)."""
        with self.lock:
            record = self.get(ot, object_id)
            if record is None:
                return False
            now = self.clock.epoch_ms()
            record.archived_ms = now
            self._index(record, dict(record.properties))
            self._emit([Change("deletion", ot, record.id, now, actor)])
            return True

    def privacy_delete(
        self, ot: ObjectType, object_id: str, actor: Actor, *, id_property: str | None
    ) -> bool:
        """GDPR delete: the record is gone for good, archived or not (fact sheet hubspot.md: "GDPR delete is
        permanent"); False when there was no such record. It sends ``privacyDeletion`` and, for a live
        record, ``deletion`` too ("``contact.privacyDeletion`` also triggers ``contact.deletion``")."""
        with self.lock:
            record = self.get(ot, object_id, id_property=id_property)
            live = record is not None
            record = record or self.get(ot, object_id, id_property=id_property, archived=True)
            if record is None:
                return False
            now = self.clock.epoch_ms()
            old, record.archived_ms = dict(record.properties), now
            self._index(record, old)
            del self.records[ot.name][record.id]
            aliases = self.aliases[ot.name]
            for alias in [a for a, target in aliases.items() if target == record.id]:
                del aliases[alias]
            changes = [Change("privacyDeletion", ot, record.id, now, actor)]
            self._emit([*changes, Change("deletion", ot, record.id, now, actor)] if live else changes)
            return True

    def restore(self, ot: ObjectType, object_id: str, actor: Actor) -> Record:
        with self.lock:
            record = self.get(ot, object_id, archived=True)
            if record is None or record.id in self.aliases[ot.name]:
                raise errors.object_not_found(object_id)
            self._claim_unique(ot, record.id, record.properties)
            now = self.clock.epoch_ms()
            record.archived_ms = None
            record.updated_ms = now
            self._set(record, ot.last_modified, iso(now), now, actor)
            self._index(record, {})
            self._emit([Change("restore", ot, record.id, now, actor)])
            return record

    def merge(self, ot: ObjectType, primary_id: str, other_id: str, actor: Actor) -> Record:
        """Today's merge: a new record (new id) holds the primary's values over the other's (§6)."""
        with self.lock:
            primary, other = self.require(ot, primary_id), self.require(ot, other_id)
            if primary.id == other.id:
                raise errors.bad_request("Cannot merge an object with itself")
            now = self.clock.epoch_ms()
            merged = Record(self.new_id(), ot, {}, {}, min(primary.created_ms, other.created_ms), now)
            moved = {k: v for k, v in other.properties.items() if k not in primary.properties}
            values = {**other.properties, **primary.properties}
            earlier = [
                i for r in (primary, other) for i in r.properties.get("hs_merged_object_ids", "").split(";")
            ]
            values["hs_merged_object_ids"] = ";".join(i for i in [*earlier, primary.id, other.id] if i)
            values["hs_object_id"] = merged.id
            values[ot.last_modified] = iso(now)
            for name, value in values.items():
                self._set(merged, name, value, now, actor)
            for old in (primary, other):
                old.archived_ms = now
                self._index(old, dict(old.properties))
                del self.records[ot.name][old.id]
                self.aliases[ot.name][old.id] = merged.id
            for alias, target in self.aliases[ot.name].items():
                if target in (primary.id, other.id):
                    self.aliases[ot.name][alias] = merged.id
            self.records[ot.name][merged.id] = merged
            self._index(merged, {})
            for old in (primary, other):
                self.associations.move((ot.name, old.id), (ot.name, merged.id))
            extra = {
                "primaryObjectId": int(primary.id),
                "mergedObjectIds": [int(other.id)],
                "newObjectId": int(merged.id),
                "numberOfPropertiesMoved": len(moved),
            }
            self._emit([Change("merge", ot, merged.id, now, actor, extra=extra)])
            return merged

    # ---- associations ----------------------------------------------------------------------------
    def associate(  # noqa: PLR0917 -- mirrors the v4 path: from type/id, to type/id, types
        self,
        source: ObjectType,
        source_id: str,
        target: ObjectType,
        target_id: str,
        type_ids: list[int],
        actor: Actor,
    ) -> tuple[Record, Record]:
        with self.lock:
            left, right = self.require(source, source_id), self.require(target, target_id)
            table = known_types(source.name, target.name)
            unknown = [t for t in type_ids if t not in table]
            if not table or unknown:
                raise errors.bad_request(
                    f"Unknown association type ids {unknown} from {source.name} to {target.name}"
                )
            edges = self.associations.add((source.name, left.id), (target.name, right.id), type_ids)
            self._emit_edges(edges, actor)
            return left, right

    def disassociate(  # noqa: PLR0917 -- mirrors the v4 path: from type/id, to type/id, types
        self,
        source: ObjectType,
        source_id: str,
        target: ObjectType,
        target_id: str,
        type_ids: list[int] | None,
        actor: Actor,
    ) -> None:
        with self.lock:
            left, right = self.get(source, source_id), self.get(target, target_id)
            if left is None or right is None or not known_types(source.name, target.name):
                return
            edges = self.associations.remove((source.name, left.id), (target.name, right.id), type_ids)
            self._emit_edges(edges, actor)

    def associations_of(self, ot: ObjectType, object_id: str, target: ObjectType) -> dict[str, set[int]]:
        with self.lock:
            record = self.require(ot, object_id)
            found = self.associations.targets((ot.name, record.id), target.name)
            return {k: v for k, v in found.items() if self.get(target, k) is not None}

    def _emit_edges(self, edges: Iterable[Edge], actor: Actor) -> None:
        now = self.clock.epoch_ms()
        changes = []
        for edge in edges:
            source, target = OBJECT_TYPES[edge.from_type], OBJECT_TYPES[edge.to_type]
            extra = {
                "associationType": f"{source.singular.upper()}_TO_{target.singular.upper()}",
                "fromObjectId": int(edge.from_id),
                "toObjectId": int(edge.to_id),
                "associationRemoved": edge.removed,
                "isPrimaryAssociation": edge.primary,
                # For the generic (project app) shape, which names types by id; not sent as such.
                "_toObjectTypeId": target.type_id,
                "_associationTypeId": edge.type_id,
            }
            changes.append(Change("associationChange", source, edge.from_id, now, actor, extra=extra))
        if changes:
            self._emit(changes)


def _norm(name: str, value: str) -> str:
    return value.lower() if name in {"email", "domain"} else value


def _check_value(prop: PropertyDef, value: str) -> tuple[str, str] | None:
    if value == "":
        return None
    if prop.type == "number":
        try:
            float(value)
        except ValueError:
            return "INVALID_INTEGER", f'"{value}" is not a valid number for {prop.name}'
    elif prop.type == "bool" and value.lower() not in {"true", "false"}:
        return "INVALID_BOOLEAN", f'"{value}" is not a valid boolean for {prop.name}'
    elif prop.type in {"datetime", "date"} and to_ms(value) is None:
        return "INVALID_DATE", f'"{value}" is not a valid date for {prop.name}'
    elif prop.type == "enumeration" and prop.options:
        allowed = {o["value"] for o in prop.options}
        bad = [v for v in value.lstrip(";").split(";") if v not in allowed]
        if bad:
            return "INVALID_OPTION", f'"{bad[0]}" was not one of the allowed options for {prop.name}'
    return None


def _normalise(prop: PropertyDef, value: str) -> str:
    if value and prop.type == "bool":
        return value.lower()
    if value and prop.type == "datetime":
        ms = to_ms(value)
        return iso(ms) if ms is not None else value
    return value


def _forward_only(current: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """An API write moves the lifecycle stage forward only: an earlier stage than the record holds is
    answered with success and not applied; clearing it ("") first, in a request of its own, lets an
    earlier stage be set (integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333, HubSpot's answer;
    the order: knowledge.hubspot.com/contacts/use-lifecycle-stages). Users (the admin API) move it freely."""
    order = [value for value, _ in LIFECYCLE_STAGES]
    have, want = current.get("lifecyclestage", ""), values.get("lifecyclestage", "")
    if have in order and want in order and order.index(want) < order.index(have):
        return {k: v for k, v in values.items() if k != "lifecyclestage"}
    return values
