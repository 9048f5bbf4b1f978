"""Admin-configured validation rules, which HubSpot applies to CRM API writes from API version 2026-09.

The changelog (hs:changelog/crm-api-write-validation-enforcement; fact sheet hubspot_2026.md §4) names
three rules an admin configures in the portal and that 2026-09 API writes now obey; two are emulated:

- a property required on the Create Record form: a create without a value for it is refused with
  ``MISSING_REQUIRED_PROPERTY``;
- a conditionally required property (``closedate`` required when ``dealstage`` is ``closedwon``): a create
  or update after which the record holds the condition's value and no value for the property is refused
  with ``MISSING_CONDITIONAL_REQUIRED_PROPERTY``. A value the record already holds counts (whether HubSpot
  wants it in the request itself is not documented).

The third (user-level association permissions) is not emulated. A refusal is HTTP 400 with ``category:
VALIDATION_ERROR`` and one ``errors[]`` entry per broken rule (``code``, ``message``: the rule's,
``context.propertyName: [name]``). A batch with one refused input is refused whole with that 400: the
changelog documents only the 400, no per-input answer, so the emulator takes the harsher reading. Rules
bind the API routes of 2026-09 only (`cdc.sandbox.hubspot.versions`); the admin API's writes stand for
users and imports and are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.objects import ObjectType, PropertyDef

__all__ = ["Rule", "Rules"]

REQUIRED = "MISSING_REQUIRED_PROPERTY"
CONDITIONAL = "MISSING_CONDITIONAL_REQUIRED_PROPERTY"


@dataclass(frozen=True)
class Rule:
    id: int
    object_type: str
    """The type's path name: ``contacts``."""
    property_name: str
    message: str
    when: tuple[str, str] | None = None
    """(property, value): the rule binds while the record holds that value; None: on create only."""

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "objectType": self.object_type,
            "propertyName": self.property_name,
            "message": self.message,
        }
        if self.when is not None:
            body["when"] = {"propertyName": self.when[0], "value": self.when[1]}
        return body

    def broken(self, before: Mapping[str, str] | None, after: Mapping[str, str]) -> bool:
        """Whether a write turning ``before`` (None: a create) into ``after`` breaks the rule."""
        if after.get(self.property_name):
            return False
        if self.when is None:
            return before is None
        name, value = self.when
        return after.get(name) == value


class Rules:
    """The portal's rules, in the order an admin added them."""

    def __init__(self) -> None:
        self.items: list[Rule] = []

    def add(self, ot: ObjectType, body: Mapping[str, Any], known: Mapping[str, PropertyDef]) -> Rule:
        """A rule from the admin API's body: ``{"objectType", "propertyName", "message"?, "when"?:
        {"propertyName", "value"}}``; 400 when a property it names does not exist."""
        name = body.get("propertyName")
        when = body.get("when")
        if not isinstance(name, str) or name not in known:
            raise errors.bad_request(f"propertyName must name a {ot.singular} property, not {name!r}")
        condition: tuple[str, str] | None = None
        if when is not None:
            if not isinstance(when, Mapping) or when.get("propertyName") not in known or "value" not in when:
                raise errors.bad_request("when must be {propertyName: <a property>, value: <its value>}")
            condition = (str(when["propertyName"]), str(when["value"]))
        label = known[name].label
        default = (
            f"{label} is required to create a {ot.singular}"
            if condition is None
            else f"{label} is required when {known[condition[0]].label} is {condition[1]}"
        )
        rule = Rule(len(self.items) + 1, ot.name, name, str(body.get("message") or default), condition)
        self.items.append(rule)
        return rule

    def clear(self) -> None:
        self.items.clear()

    def check(
        self, ot: ObjectType, writes: Iterable[tuple[Mapping[str, str] | None, Mapping[str, Any]]]
    ) -> None:
        """Refuse the request (one 400 for all its inputs) when any write breaks a rule of ``ot``. Each
        write is (the record's values before it, None for a create; the values sent, ``""`` clearing)."""
        broken: list[Rule] = []
        for before, values in writes:
            after = {**(before or {}), **{k: _text(v) for k, v in values.items()}}
            broken += [r for r in self.items if r.object_type == ot.name and r.broken(before, after)]
        if broken:
            unique = list(dict.fromkeys(broken))
            raise errors.rules_broken(
                [(r.property_name, CONDITIONAL if r.when else REQUIRED, r.message) for r in unique]
            )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)
