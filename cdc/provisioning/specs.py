"""The three kinds of thing provisioning creates, each with the request body that creates it: a HubSpot
property (the properties API, in every version: no field 2026-09 removed, each option's ``displayOrder``,
which 2026-03 made required), a webhook subscription, a Dataverse column (metadata API,
``AttributeMetadata`` by type)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "MEMO_MAX_LENGTH",
    "STRING_MAX_LENGTH",
    "ColumnSpec",
    "PropertySpec",
    "SubscriptionSpec",
]

STRING_MAX_LENGTH = 4000
"""Dataverse's largest String column; a row with a longer ``max_length`` gets a Memo column instead.
HubSpot strings hold 65,536 characters, so a text column without a configured length takes the maximum."""
MEMO_MAX_LENGTH = 1_048_576

_DESCRIPTION = "Created by the HubSpot <-> Dynamics 365 sync for {}."


def _localized(text: str) -> dict[str, Any]:
    label = {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": 1033}
    return {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [label]}


@dataclass(frozen=True)
class PropertySpec:
    """A HubSpot property the configuration needs; ``options`` are (value, label) in display order."""

    object: str
    name: str
    label: str
    type: str
    field_type: str
    options: tuple[tuple[str, str], ...] = ()
    steps: tuple[str, ...] = ()
    unique: bool = False
    """``hasUniqueValue``: HubSpot refuses a second record with the value, and upserts can key on it."""

    def body(self, group: str) -> dict[str, Any]:
        """The body of `Endpoints.create_property`."""
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": group,
            "description": _DESCRIPTION.format(", ".join(self.steps)),
        }
        if self.unique:
            body["hasUniqueValue"] = True
        if self.options:
            body["options"] = [
                {"label": label, "value": value, "displayOrder": n, "hidden": False}
                for n, (value, label) in enumerate(self.options)
            ]
        return body


@dataclass(frozen=True)
class ColumnSpec:
    """A Dataverse column; ``kind`` is the metadata ``AttributeType`` (String, Memo, Integer, Decimal,
    DateTime, Boolean, Picklist); ``options`` are (value, label), for a Boolean (1 = true, 0 = false)."""

    table: str
    name: str
    label: str
    kind: str
    max_length: int | None = None
    date_only: bool = False
    options: tuple[tuple[int, str], ...] = ()
    steps: tuple[str, ...] = ()
    alternate_key: bool = False
    """The column is also an alternate key of its own (``<column>_key``): upserts can address a row by it."""

    def key_body(self) -> dict[str, Any]:
        """The body (EntityKeyMetadata) POSTed to `cdc.dataverse.paths.keys`."""
        return {
            "SchemaName": f"{self.name}_key",
            "DisplayName": _localized(f"{self.label} (key)"),
            "KeyAttributes": [self.name],
        }

    def body(self) -> dict[str, Any]:
        """The body (AttributeMetadata by type) POSTed to `cdc.dataverse.paths.attributes`."""
        body: dict[str, Any] = {
            "@odata.type": f"Microsoft.Dynamics.CRM.{self.kind}AttributeMetadata",
            "SchemaName": self.name,
            "DisplayName": _localized(self.label),
            "Description": _localized(_DESCRIPTION.format(", ".join(self.steps))),
            "RequiredLevel": {"Value": "None", "CanBeChanged": True},
        }
        if self.kind == "String":
            body["MaxLength"] = self.max_length or STRING_MAX_LENGTH
            body["FormatName"] = {"Value": "Text"}
        elif self.kind == "Memo":
            body["MaxLength"] = self.max_length or MEMO_MAX_LENGTH
            body["Format"] = "TextArea"
        elif self.kind == "Integer":
            body.update({"Format": "None", "MinValue": -2_147_483_648, "MaxValue": 2_147_483_647})
        elif self.kind == "Decimal":
            body.update({"Precision": 2, "MinValue": -100_000_000_000, "MaxValue": 100_000_000_000})
        elif self.kind == "DateTime":
            body["Format"] = "DateOnly" if self.date_only else "DateAndTime"
            body["DateTimeBehavior"] = {"Value": "DateOnly" if self.date_only else "UserLocal"}
        elif self.kind == "Boolean":
            labels = dict(self.options)
            body["DefaultValue"] = False
            body["OptionSet"] = {
                "@odata.type": "Microsoft.Dynamics.CRM.BooleanOptionSetMetadata",
                "OptionSetType": "Boolean",
                "TrueOption": {"Value": 1, "Label": _localized(labels.get(1, "Yes"))},
                "FalseOption": {"Value": 0, "Label": _localized(labels.get(0, "No"))},
            }
        elif self.kind == "Picklist":
            body["OptionSet"] = {
                "@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata",
                "IsGlobal": False,
                "OptionSetType": "Picklist",
                "Options": [{"Value": value, "Label": _localized(label)} for value, label in self.options],
            }
        return body


@dataclass(frozen=True)
class SubscriptionSpec:
    """A webhook subscription: ``<object>.<action>``, with a property for ``propertyChange``."""

    object: str
    action: str
    property_name: str | None = None

    @property
    def event_type(self) -> str:
        return f"{self.object}.{self.action}"

    @property
    def key(self) -> str:
        return f"{self.event_type}:{self.property_name}" if self.property_name else self.event_type

    def body(self) -> dict[str, Any]:
        """The body of `Endpoints.create_subscription`, active (new ones are paused by default)."""
        body: dict[str, Any] = {"eventType": self.event_type, "active": True}
        if self.property_name:
            body["propertyName"] = self.property_name
        return body
