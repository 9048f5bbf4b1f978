"""The CRM object types the emulator serves and their built-in property definitions.

Names, type ids, default properties, last-modified property and unique keys follow fact sheet §3.1 and
§6; the property list is a practical subset of each type's standard properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["OBJECT_TYPES", "ObjectType", "PropertyDef", "builtin_properties", "object_type"]

READ_ONLY = frozenset(
    {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_merged_object_ids"}
)


@dataclass(frozen=True)
class ObjectType:
    name: str  # path name: contacts
    type_id: str  # 0-1
    singular: str  # contact (webhook prefix)
    label: str  # Contact (messages)
    last_modified: str
    defaults: tuple[str, ...]
    unique: tuple[str, ...]  # built-in unique properties enforced with 409


OBJECT_TYPES: dict[str, ObjectType] = {
    ot.name: ot
    for ot in (
        ObjectType(
            "contacts",
            "0-1",
            "contact",
            "Contact",
            "lastmodifieddate",
            ("firstname", "lastname", "email"),
            ("email",),
        ),
        ObjectType("companies", "0-2", "company", "Company", "hs_lastmodifieddate", ("name", "domain"), ()),
        ObjectType(
            "deals",
            "0-3",
            "deal",
            "Deal",
            "hs_lastmodifieddate",
            ("dealname", "amount", "closedate", "pipeline", "dealstage"),
            (),
        ),
    )
}
_ALIASES = {alias: ot for ot in OBJECT_TYPES.values() for alias in (ot.name, ot.type_id, ot.singular)}


def object_type(name: str) -> ObjectType | None:
    """Paths accept the plural name, the singular name or the type id (fact sheet §3.1, §4)."""
    return _ALIASES.get(name.lower())


@dataclass
class PropertyDef:
    name: str
    label: str
    type: str  # string, number, enumeration, datetime, date, bool
    field_type: str
    group_name: str
    options: list[dict[str, Any]] = field(default_factory=list)
    has_unique_value: bool = False
    read_only: bool = False
    custom: bool = False
    description: str = ""
    created_at: str = "2019-01-01T00:00:00Z"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": False,
            "hubspotDefined": not self.custom,
            "formField": not self.read_only,
            "modificationMetadata": {
                "archivable": self.custom,
                "readOnlyDefinition": not self.custom,
                "readOnlyValue": self.read_only,
            },
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "archived": False,
        }


_FIELD_TYPES = {
    "string": "text",
    "number": "number",
    "enumeration": "select",
    "datetime": "date",
    "date": "date",
    "bool": "booleancheckbox",
}
LIFECYCLE = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
]
_COMMON = [("hs_object_id", "number"), ("createdate", "datetime"), ("hs_merged_object_ids", "string")]
_SPECS: dict[str, list[tuple[str, str]]] = {
    "contacts": [
        ("email", "string"),
        ("firstname", "string"),
        ("lastname", "string"),
        ("phone", "string"),
        ("mobilephone", "string"),
        ("company", "string"),
        ("jobtitle", "string"),
        ("website", "string"),
        ("address", "string"),
        ("city", "string"),
        ("state", "string"),
        ("zip", "string"),
        ("country", "string"),
        ("lifecyclestage", "enumeration"),
        ("hs_lead_status", "string"),
        ("hs_additional_emails", "string"),
        ("hubspot_owner_id", "string"),
        ("lastmodifieddate", "datetime"),
    ],
    "companies": [
        ("name", "string"),
        ("domain", "string"),
        ("phone", "string"),
        ("website", "string"),
        ("industry", "string"),
        ("address", "string"),
        ("city", "string"),
        ("state", "string"),
        ("zip", "string"),
        ("country", "string"),
        ("numberofemployees", "number"),
        ("annualrevenue", "number"),
        ("lifecyclestage", "enumeration"),
        ("description", "string"),
        ("hubspot_owner_id", "string"),
        ("hs_lastmodifieddate", "datetime"),
    ],
    "deals": [
        ("dealname", "string"),
        ("amount", "number"),
        ("closedate", "datetime"),
        ("pipeline", "string"),
        ("dealstage", "string"),
        ("dealtype", "string"),
        ("description", "string"),
        ("hubspot_owner_id", "string"),
        ("hs_lastmodifieddate", "datetime"),
    ],
}


def builtin_properties(ot: ObjectType) -> dict[str, PropertyDef]:
    result: dict[str, PropertyDef] = {}
    for name, kind in [*_SPECS[ot.name], *_COMMON]:
        options = (
            [
                {"label": value.title(), "value": value, "displayOrder": n, "hidden": False}
                for n, value in enumerate(LIFECYCLE)
            ]
            if name == "lifecyclestage"
            else []
        )
        result[name] = PropertyDef(
            name=name,
            label=name.replace("_", " ").title(),
            type=kind,
            field_type=_FIELD_TYPES[kind],
            group_name=f"{ot.singular}information",
            options=options,
            has_unique_value=name in ot.unique,
            read_only=name in READ_ONLY,
        )
    return result
