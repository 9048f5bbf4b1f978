"""The CRM object types the emulator serves and their built-in property definitions.

Names, type ids, default properties, last-modified property and unique keys follow fact sheet §3.1 and
§6; the property list is a practical subset of each type's standard properties: at least every standard
property the daemon's default configuration reads or writes, with HubSpot's ``type``/``fieldType``, label and
standard options (`cdc.sandbox.hubspot.options`). Properties HubSpot computes itself (analytics, email,
conversion, lifecycle-date, record-source, score) are ``readOnlyValue``: an API write of them is refused with
``READ_ONLY_VALUE``; HubSpot-internal writes (``changeSource: HUBSPOT_INTERNAL``, see the admin API) and the
admin seed may set them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.sandbox.hubspot.options import (
    BOOLEAN,
    COMPANY_INDUSTRIES,
    DEAL_PIPELINES,
    DEAL_STAGES,
    LEAD_STATUSES,
    LIFECYCLE_STAGES,
    MARKETABLE_STATUSES,
    RECORD_SOURCES,
    TRAFFIC_SOURCES,
)

__all__ = [
    "OBJECT_TYPES",
    "ObjectType",
    "PropertyDef",
    "PropertyGroup",
    "builtin_groups",
    "builtin_properties",
    "object_type",
]


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


@dataclass
class PropertyGroup:
    """A property group (``<properties>/{objectType}/groups``): where a portal's UI shows properties."""

    name: str
    label: str
    display_order: int = -1
    archived: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "displayOrder": self.display_order,
            "archived": self.archived,
        }


def builtin_groups(ot: ObjectType) -> dict[str, PropertyGroup]:
    """The one HubSpot-defined group of every built-in property of the type (``contactinformation``)."""
    name = f"{ot.singular}information"
    return {name: PropertyGroup(name, f"{ot.label} information", 0)}


_FIELD_TYPES = {
    "string": "text",
    "number": "number",
    "enumeration": "select",
    "datetime": "date",
    "date": "date",
    "bool": "booleancheckbox",
}


@dataclass(frozen=True)
class _Spec:
    """One built-in property: HubSpot's name, label, ``type`` and ``fieldType``; ``read_only`` when HubSpot
    computes the value itself (``modificationMetadata.readOnlyValue``: API writes get ``READ_ONLY_VALUE``)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = ""
    read_only: bool = False
    options: tuple[tuple[str, str], ...] = ()


def _ro(name: str, label: str, kind: str = "string", field_type: str = "", **kw: Any) -> _Spec:
    return _Spec(name, label, kind, field_type, read_only=True, **kw)


def _became(value: str, label: str) -> _Spec:
    """The legacy "Became a <stage> Date" properties (``hs_lifecyclestage_<stage>_date``), set by HubSpot."""
    noun = "Other Lifecycle" if value == "other" else label
    article = "an" if noun[0] in "AEIOU" else "a"
    return _ro(f"hs_lifecyclestage_{value}_date", f"Became {article} {noun} Date", "datetime")


_LIFECYCLE_DATES = [_became(value, label) for value, label in LIFECYCLE_STAGES]
_RECORD_SOURCE = [
    _ro("hs_object_source_label", "Record source", "enumeration", options=RECORD_SOURCES),
    *(_ro(f"hs_object_source_detail_{n}", f"Record source detail {n}") for n in (1, 2, 3)),
]
_CONVERSIONS = [
    _ro("first_conversion_event_name", "First Conversion"),
    _ro("first_conversion_date", "First Conversion Date", "datetime"),
    _ro("recent_conversion_event_name", "Recent Conversion"),
    _ro("recent_conversion_date", "Recent Conversion Date", "datetime"),
]
_ORIGINAL_SOURCE = [
    _ro("hs_analytics_source", "Original Traffic Source", "enumeration", options=TRAFFIC_SOURCES),
    _ro("hs_analytics_source_data_1", "Original Traffic Source Drill-Down 1"),
    _ro("hs_analytics_source_data_2", "Original Traffic Source Drill-Down 2"),
]
_OWNER = _Spec("hubspot_owner_id", "Owner", "enumeration")  # options: the portal's owners (any id accepted)
_LIFECYCLE = _Spec("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=LIFECYCLE_STAGES)
_COMMON = [
    _ro("hs_object_id", "Record ID", "number"),
    _ro("createdate", "Create Date", "datetime"),
    _ro("hs_merged_object_ids", "Merged record IDs"),
]
_SPECS: dict[str, list[_Spec]] = {
    "contacts": [
        _Spec("email", "Email"),
        _Spec("firstname", "First Name"),
        _Spec("lastname", "Last Name"),
        _Spec("salutation", "Salutation"),
        _Spec("phone", "Phone Number", field_type="phonenumber"),
        _Spec("mobilephone", "Mobile Phone Number", field_type="phonenumber"),
        _Spec("company", "Company Name"),
        _Spec("jobtitle", "Job Title"),
        _Spec("industry", "Industry"),  # free text on contacts (an enumeration on companies)
        _Spec("website", "Website URL"),
        _Spec("address", "Street Address"),
        _Spec("city", "City"),
        _Spec("state", "State/Region"),
        _Spec("zip", "Postal Code"),
        _Spec("country", "Country/Region"),
        _LIFECYCLE,
        _Spec("hs_lead_status", "Lead Status", "enumeration", "radio", options=LEAD_STATUSES),
        _Spec("hs_additional_emails", "Additional email addresses"),
        _OWNER,
        _ro("lastmodifieddate", "Last Modified Date", "datetime"),
        *_LIFECYCLE_DATES,
        _ro("hubspotscore", "HubSpot Score", "number"),
        _ro(
            "hs_marketable_status",
            "Marketing contact status",
            "enumeration",
            "booleancheckbox",
            options=MARKETABLE_STATUSES,
        ),
        _ro("hs_email_optout", "Unsubscribed from all email", "bool", options=BOOLEAN),
        _ro("hs_email_bounce", "Marketing emails bounced", "number"),
        _ro("hs_email_click", "Marketing emails clicked", "number"),
        _ro("hs_email_delivered", "Marketing emails delivered", "number"),
        _ro("hs_email_open", "Marketing emails opened", "number"),
        _ro("hs_email_replied", "Marketing emails replied", "number"),
        _ro("hs_email_sends_since_last_engagement", "Sends Since Last Engagement", "number"),
        _ro("hs_email_first_click_date", "First marketing email click date", "datetime"),
        _ro("hs_email_first_open_date", "First marketing email open date", "datetime"),
        _ro("hs_email_first_reply_date", "First marketing email reply date", "datetime"),
        _ro("hs_email_first_send_date", "First marketing email send date", "datetime"),
        _ro("hs_email_last_click_date", "Last marketing email click date", "datetime"),
        _ro("hs_email_last_open_date", "Last marketing email open date", "datetime"),
        _ro("hs_email_last_reply_date", "Last marketing email reply date", "datetime"),
        _ro("hs_email_last_send_date", "Last marketing email send date", "datetime"),
        _ro("hs_email_last_email_name", "Last marketing email name"),
        _ro("num_conversion_events", "Number of Form Submissions", "number"),
        _ro("num_unique_conversion_events", "Number of Unique Forms Submitted", "number"),
        *_CONVERSIONS,
        *_ORIGINAL_SOURCE,
        _ro("hs_latest_source", "Latest Traffic Source", "enumeration", options=TRAFFIC_SOURCES),
        _ro("hs_latest_source_data_1", "Latest Traffic Source Drill-Down 1"),
        _ro("hs_latest_source_data_2", "Latest Traffic Source Drill-Down 2"),
        _ro("hs_latest_source_timestamp", "Latest Traffic Source Date", "datetime"),
        _ro("hs_analytics_first_url", "First Page Seen"),
        _ro("hs_analytics_first_referrer", "First Referring Site"),
        _ro("hs_analytics_last_url", "Last Page Seen"),
        _ro("hs_analytics_last_referrer", "Last Referring Site"),
        _ro("hs_analytics_first_touch_converting_campaign", "First Touch Converting Campaign"),
        _ro("hs_analytics_last_touch_converting_campaign", "Last Touch Converting Campaign"),
        _ro("hs_analytics_first_timestamp", "Time First Seen", "datetime"),
        _ro("hs_analytics_last_timestamp", "Time Last Seen", "datetime"),
        _ro("hs_analytics_first_visit_timestamp", "Time of First Session", "datetime"),
        _ro("hs_analytics_last_visit_timestamp", "Time of Last Session", "datetime"),
        _ro("hs_analytics_num_page_views", "Number of Pageviews", "number"),
        _ro("hs_analytics_num_visits", "Number of Sessions", "number"),
        *_RECORD_SOURCE,
    ],
    "companies": [
        _Spec("name", "Company name"),
        _Spec("domain", "Company Domain Name"),
        _Spec("phone", "Phone Number", field_type="phonenumber"),
        _Spec("website", "Website URL"),
        _Spec("industry", "Industry", "enumeration", options=COMPANY_INDUSTRIES),
        _Spec("address", "Street Address"),
        _Spec("address2", "Street Address 2"),
        _Spec("city", "City"),
        _Spec("state", "State/Region"),
        _Spec("zip", "Postal Code"),
        _Spec("country", "Country/Region"),
        _Spec("numberofemployees", "Number of Employees", "number"),
        _Spec("annualrevenue", "Annual Revenue", "number"),
        _LIFECYCLE,
        _Spec("description", "Description", field_type="textarea"),
        _OWNER,
        _ro("hs_lastmodifieddate", "Last Modified Date", "datetime"),
        *_ORIGINAL_SOURCE,
        _ro("hs_analytics_latest_source", "Latest Traffic Source", "enumeration", options=TRAFFIC_SOURCES),
        _ro("hs_analytics_latest_source_data_1", "Latest Traffic Source Data 1"),
        _ro("hs_analytics_latest_source_data_2", "Latest Traffic Source Data 2"),
        _ro("hs_analytics_latest_source_timestamp", "Latest Traffic Source Timestamp", "datetime"),
        _ro("hs_analytics_first_touch_converting_campaign", "First Touch Converting Campaign"),
        *_CONVERSIONS,
        *_RECORD_SOURCE,
    ],
    "deals": [
        _Spec("dealname", "Deal Name"),
        _Spec("amount", "Amount", "number"),
        _Spec("closedate", "Close Date", "datetime"),
        _Spec("pipeline", "Pipeline", "enumeration", options=DEAL_PIPELINES),
        _Spec("dealstage", "Deal Stage", "enumeration", "radio", options=DEAL_STAGES),
        _Spec("dealtype", "Deal Type"),
        _Spec("description", "Deal Description", field_type="textarea"),
        _OWNER,
        _ro("hs_lastmodifieddate", "Last Modified Date", "datetime"),
    ],
}


def _options(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "displayOrder": n, "hidden": False}
        for n, (value, label) in enumerate(pairs)
    ]


def builtin_properties(ot: ObjectType) -> dict[str, PropertyDef]:
    return {
        spec.name: PropertyDef(
            name=spec.name,
            label=spec.label,
            type=spec.type,
            field_type=spec.field_type or _FIELD_TYPES[spec.type],
            group_name=f"{ot.singular}information",
            options=_options(spec.options),
            has_unique_value=spec.name in ot.unique,
            read_only=spec.read_only,
        )
        for spec in [*_SPECS[ot.name], *_COMMON]
    }
