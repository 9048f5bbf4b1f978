"""Contract: the sandbox CRMs define everything the default sync configuration reads or writes.

For every step of ``consumers/default_steps.yaml`` (the disabled lead steps and optional rows included):

- every standard (non-custom) HubSpot property exists in ``GET /crm/properties/2026-09/{object}`` with a
  type the field's value type can use, and enumerations carry the standard options the option sets name;
- every standard Dataverse column exists in ``EntityDefinitions(LogicalName='x')/Attributes`` with a
  compatible ``AttributeType`` (and the configured length, and the option values the option sets name);
- after ``provision_sandbox`` one batch update of every writable mapped HubSpot property and one PATCH of
  every writable mapped Dataverse column (custom ones included) on seeded records succeed, and reading every
  mapped property/column back works, HubSpot-computed (read-only) properties included.

Expected types are written from the mapping reference (``default_mappings.md``), not from the emulators.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cdc.provisioning.run import provision_sandbox
from cdc.sandbox.runner import Sandbox, run_sandbox
from consumers.config import FieldMap, Step, SyncConfig, ValueType
from consumers.loader import load_config
from streams.config import KafkaSettings
from streams.keys import SourceSystem

HS_TYPES: dict[ValueType, set[str]] = {
    ValueType.STRING: {"string", "enumeration"},  # owner ids and record source are read as text
    ValueType.NUMBER: {"number"},
    ValueType.INTEGER: {"number"},
    ValueType.DATETIME: {"datetime", "date"},
    ValueType.DATE: {"date", "datetime"},
    ValueType.BOOL: {"bool"},
    ValueType.OPTION: {"enumeration", "bool"},
}
DV_TYPES: dict[ValueType, set[str]] = {
    ValueType.STRING: {"String", "Memo"},
    ValueType.NUMBER: {"Money", "Decimal", "Double", "Integer"},
    ValueType.INTEGER: {"Integer", "BigInt"},
    ValueType.DATETIME: {"DateTime"},
    ValueType.DATE: {"DateTime"},
    ValueType.BOOL: {"Boolean"},
    ValueType.OPTION: {"Picklist", "State", "Status", "Boolean"},
}
LOOKUP_TYPES = {"Lookup", "Customer", "Owner"}
READ_ONLY_IN_HUBSPOT = {
    "contact": {
        "createdate",
        "first_conversion_date",
        "first_conversion_event_name",
        "recent_conversion_date",
        "recent_conversion_event_name",
        "hubspotscore",
        "hs_marketable_status",
        "hs_email_optout",
        "num_conversion_events",
        "num_unique_conversion_events",
        *(f"hs_lifecyclestage_{s}_date" for s in ("customer", "lead", "marketingqualifiedlead")),
        *(f"hs_lifecyclestage_{s}_date" for s in ("salesqualifiedlead", "subscriber", "evangelist")),
        *(f"hs_lifecyclestage_{s}_date" for s in ("opportunity", "other")),
        *(f"hs_email_{n}" for n in ("bounce", "click", "delivered", "open", "replied")),
        "hs_email_sends_since_last_engagement",
        "hs_email_last_email_name",
        *(f"hs_email_{w}_{e}_date" for w in ("first", "last") for e in ("click", "open", "reply", "send")),
        *(f"hs_analytics_{w}_{n}" for w in ("first", "last") for n in ("url", "referrer", "timestamp")),
        *(f"hs_analytics_{w}_touch_converting_campaign" for w in ("first", "last")),
        *(f"hs_analytics_{w}_visit_timestamp" for w in ("first", "last")),
        "hs_analytics_num_page_views",
        "hs_analytics_num_visits",
        "hs_analytics_source",
        "hs_analytics_source_data_1",
        "hs_analytics_source_data_2",
        "hs_latest_source",
        "hs_latest_source_data_1",
        "hs_latest_source_data_2",
        "hs_latest_source_timestamp",
        "hs_object_source_label",
        *(f"hs_object_source_detail_{n}" for n in (1, 2, 3)),
    },
    "company": {
        "createdate",
        "first_conversion_date",
        "first_conversion_event_name",
        "recent_conversion_date",
        "recent_conversion_event_name",
        "hs_analytics_first_touch_converting_campaign",
        "hs_analytics_source",
        "hs_analytics_source_data_1",
        "hs_analytics_source_data_2",
        "hs_analytics_latest_source",
        "hs_analytics_latest_source_data_1",
        "hs_analytics_latest_source_data_2",
        "hs_analytics_latest_source_timestamp",
        "hs_object_source_label",
        *(f"hs_object_source_detail_{n}" for n in (1, 2, 3)),
    },
    "deal": set(),
}
"""What HubSpot computes itself among the mapped properties: every one is only *read* by a step."""

SEED = {
    "contact": {"email": "coverage@example.com", "lastname": "Coverage"},
    "company": {"name": "Coverage Ltd"},
    "deal": {"dealname": "Coverage deal"},
}
ROW = {
    "contact": {"lastname": "Coverage"},
    "account": {"name": "Coverage"},
    "lead": {"lastname": "Coverage", "subject": "Coverage"},
    "opportunity": {"name": "Coverage"},
}
WRITE_VALUES = {"email": "coverage.written@example.com"}
PLURAL = {"contact": "contacts", "company": "companies", "deal": "deals"}
BOUND = {  # the mapped lookups, read as their formatted value (written here through @odata.bind)
    "contact": {"ownerid"},
    "account": {"ownerid"},
    "lead": {"ownerid", "campaignid"},
    "opportunity": {"ownerid", "campaignid", "parentaccountid", "parentcontactid"},
}


@dataclass(frozen=True)
class Use:
    """One mapped property or column: the value type the step gives it and whether the step writes it."""

    step: str
    field: FieldMap
    value_type: ValueType
    written: bool


def _config() -> SyncConfig:
    """Every step and every row on (lead and contact steps together), so provisioning creates them all."""
    config = load_config()
    steps = tuple(
        s.model_copy(
            update={
                "enabled": True,
                "fields": tuple(f.model_copy(update={"enabled": True}) for f in s.fields),
            }
        )
        for s in config.steps
    )
    return config.model_copy(update={"steps": steps, "allow_leads_with_contacts": True})


def _sides(step: Step, field: FieldMap) -> tuple[tuple[str, Use, bool], tuple[str, Use, bool]]:
    """(HubSpot name, use, custom), (Dataverse name, use, custom) of one row."""
    to_dataverse = step.source.system is SourceSystem.HUBSPOT
    hs_type, dv_type = (
        (field.source_type, field.target_type) if to_dataverse else (field.target_type, field.source_type)
    )
    hs_name, dv_name = (field.source, field.target) if to_dataverse else (field.target, field.source)
    hs_custom = (field.custom and not to_dataverse) or hs_name.startswith("d365_")
    dv_custom = (field.custom and to_dataverse) or dv_name.startswith("cdc_")
    return (
        (hs_name, Use(step.name, field, hs_type, not to_dataverse), hs_custom),
        (dv_name, Use(step.name, field, dv_type, to_dataverse), dv_custom),
    )


def mapped(
    *, standard_only: bool
) -> tuple[dict[tuple[str, str], list[Use]], dict[tuple[str, str], list[Use]]]:
    """(HubSpot object, property) -> uses and (table, column) -> uses over every step of the defaults."""
    hubspot: dict[tuple[str, str], list[Use]] = defaultdict(list)
    dataverse: dict[tuple[str, str], list[Use]] = defaultdict(list)
    for step in load_config().steps:
        for field in step.fields:
            (hs_name, hs_use, hs_custom), (dv_name, dv_use, dv_custom) = _sides(step, field)
            # A daemon-written row (L2's "Last CRM Sync Date") reads nothing on its source side.
            reads = {SourceSystem.HUBSPOT, SourceSystem.DATAVERSE} - (
                {step.source.system} if field.daemon_written else set()
            )
            if SourceSystem.HUBSPOT in reads and not (standard_only and hs_custom):
                hubspot[step.pair.hubspot, hs_name].append(hs_use)
            if SourceSystem.DATAVERSE in reads and not (standard_only and dv_custom):
                dataverse[step.pair.dataverse, dv_name].append(dv_use)
    return dict(hubspot), dict(dataverse)


# --- clients -------------------------------------------------------------------------------------------


@dataclass
class Clients:
    box: Sandbox
    hubspot: httpx.AsyncClient
    dataverse: httpx.AsyncClient

    async def properties(self, obj: str) -> dict[str, dict[str, Any]]:
        response = await self.hubspot.get(f"/crm/properties/2026-09/{obj}")
        assert response.status_code == 200, response.text
        return {p["name"]: p for p in response.json()["results"]}

    async def attributes(self, table: str) -> dict[str, dict[str, Any]]:
        url = f"/api/data/v9.2/EntityDefinitions(LogicalName='{table}')/Attributes?$expand=OptionSet"
        response = await self.dataverse.get(url)
        assert response.status_code == 200, response.text
        return {a["LogicalName"]: a for a in response.json()["value"]}

    async def entity_sets(self) -> dict[str, str]:
        response = await self.dataverse.get("/api/data/v9.2/EntityDefinitions")
        return {e["LogicalName"]: e["EntitySetName"] for e in response.json()["value"]}

    async def create_row(self, table: str, entity_set: str, body: dict[str, Any]) -> str:
        response = await self.dataverse.post(
            f"/api/data/v9.2/{entity_set}", json=body, headers={"Prefer": "return=representation"}
        )
        assert response.status_code == 201, response.text
        return str(response.json()[f"{table}id"])


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    async with run_sandbox(seed=23) as box:
        hubspot = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=box.hubspot.app),
            base_url="https://api.hubapi.test",
            headers={"Authorization": f"Bearer {box.hubspot.token}"},
        )
        dataverse = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=box.dataverse.app), base_url="https://org.test"
        )
        async with hubspot, dataverse:
            token = (await dataverse.post("/_admin/token")).json()["access_token"]
            dataverse.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
            yield Clients(box, hubspot, dataverse)


# --- definitions -------------------------------------------------------------------------------------


def test_the_defaults_map_the_expected_standard_names() -> None:
    hubspot, dataverse = mapped(standard_only=True)
    assert Counter(obj for obj, _ in hubspot) == {"contact": 74, "company": 30, "deal": 5}
    assert Counter(table for table, _ in dataverse) == {
        "lead": 26,
        "account": 14,
        "contact": 18,
        "opportunity": 13,
    }


async def test_every_standard_hubspot_property_exists_with_a_compatible_type(clients: Clients) -> None:
    hubspot, _ = mapped(standard_only=True)
    config = load_config()
    problems: list[str] = []
    by_object: dict[str, dict[str, dict[str, Any]]] = {}
    for (obj, name), uses in sorted(hubspot.items()):
        if obj not in by_object:
            by_object[obj] = await clients.properties(obj)
        prop = by_object[obj].get(name)
        if prop is None:
            problems.append(f"{obj}.{name}: missing")
            continue
        assert prop["hubspotDefined"] is True, name
        for use in uses:
            if prop["type"] not in HS_TYPES[use.value_type]:
                problems.append(f"{obj}.{name}: {prop['type']} for {use.value_type} ({use.step})")
            option_set = config.option_sets.get(use.field.options or "")
            if option_set is not None and option_set.hubspot:
                have = {o["value"]: o["label"] for o in prop["options"]}
                absent = set(option_set.hubspot) - set(have)
                if absent:
                    problems.append(f"{obj}.{name}: options {sorted(absent)} missing")
    assert problems == []
    read_only = {
        obj: {
            n for (o, n) in hubspot if o == obj and by_object[obj][n]["modificationMetadata"]["readOnlyValue"]
        }
        for obj in by_object
    }
    assert read_only == READ_ONLY_IN_HUBSPOT
    # A sync writing a read-only property would be refused: no step does.
    written = {(obj, name) for (obj, name), uses in hubspot.items() if any(u.written for u in uses)}
    assert not {(o, n) for o, names in READ_ONLY_IN_HUBSPOT.items() for n in names} & written


async def test_the_standard_option_lists_carry_hubspot_labels(clients: Clients) -> None:
    contacts = await clients.properties("contacts")
    lifecycle = {o["value"]: o["label"] for o in contacts["lifecyclestage"]["options"]}
    assert lifecycle["marketingqualifiedlead"] == "Marketing Qualified Lead"
    assert contacts["hs_lead_status"]["fieldType"] == "radio"
    assert contacts["hs_marketable_status"]["fieldType"] == "booleancheckbox"
    assert contacts["hs_email_optout"]["type"] == "bool"
    assert contacts["phone"]["fieldType"] == "phonenumber"
    companies = await clients.properties("companies")
    assert len(companies["industry"]["options"]) == 148
    assert companies["description"]["fieldType"] == "textarea"
    deals = await clients.properties("deals")
    assert [o["value"] for o in deals["dealstage"]["options"]][-2:] == ["closedwon", "closedlost"]


async def test_every_standard_dataverse_column_exists_with_a_compatible_type(clients: Clients) -> None:
    _, dataverse = mapped(standard_only=True)
    config = load_config()
    problems: list[str] = []
    by_table: dict[str, dict[str, dict[str, Any]]] = {}
    for (table, name), uses in sorted(dataverse.items()):
        if table not in by_table:
            by_table[table] = await clients.attributes(table)
        attribute = by_table[table].get(name)
        if attribute is None:
            problems.append(f"{table}.{name}: missing")
            continue
        problems += [f"{table}.{name}: {p}" for use in uses for p in _column_problems(attribute, use, config)]
    assert problems == []
    owner = by_table["account"]["ownerid"]
    assert (owner["AttributeType"], owner["Targets"]) == ("Owner", ["systemuser", "team"])
    assert by_table["lead"]["campaignid"]["Targets"] == ["campaign"]


def _column_problems(attribute: dict[str, Any], use: Use, config: SyncConfig) -> list[str]:
    kind, problems = attribute["AttributeType"], []
    if use.field.lookup == "formatted_value":
        ok = kind in LOOKUP_TYPES
    else:
        ok = kind in DV_TYPES[use.value_type]
        if kind == "DateTime":
            ok = ok and (attribute["Format"] == "DateOnly") == (use.value_type is ValueType.DATE)
    if not ok:
        problems.append(f"{kind} for {use.value_type} ({use.step})")
    length = use.field.max_length
    if use.written and length is not None and attribute.get("MaxLength") != length:
        problems.append(f"MaxLength {attribute.get('MaxLength')} != {length}")
    option_set = config.option_sets.get(use.field.options or "")
    if option_set is not None and option_set.dataverse and "OptionSet" in attribute:
        have = _choices(attribute)
        wrong = {v: lbl for v, lbl in option_set.dataverse.items() if have.get(int(v)) != lbl}
        if wrong:
            problems.append(f"options {wrong} not in {have}")
    return problems


def _choices(attribute: dict[str, Any]) -> dict[int, str]:
    option_set = attribute["OptionSet"]
    options = option_set.get("Options") or [option_set["FalseOption"], option_set["TrueOption"]]
    return {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in options}


# --- writes and reads after provisioning --------------------------------------------------------------


def _hubspot_value(prop: dict[str, Any]) -> str:
    if prop["name"] in WRITE_VALUES:
        return WRITE_VALUES[prop["name"]]
    if prop["options"]:
        return str(prop["options"][-1]["value"])
    return {
        "number": "42",
        "datetime": "2024-05-01T10:00:00.000Z",
        "date": "2024-05-01",
        "bool": "true",
        "enumeration": "9000001",  # an owner id: the portal's owners are the options
    }.get(prop["type"], f"value of {prop['name']}")


async def test_after_provisioning_every_writable_mapped_property_can_be_written_and_read(
    clients: Clients,
) -> None:
    await provision_sandbox(clients.box.daemon_settings(KafkaSettings()), _config())
    hubspot, _ = mapped(standard_only=False)
    seed = {PLURAL[obj]: [values] for obj, values in SEED.items()}
    seeded = (await clients.hubspot.post("/_admin/seed", json=seed)).json()
    for obj, plural in PLURAL.items():
        record_id = seeded[plural][0]
        props = await clients.properties(obj)
        names = sorted(n for (o, n) in hubspot if o == obj)
        writable = {
            n: _hubspot_value(props[n])
            for n in names
            if not props[n]["modificationMetadata"]["readOnlyValue"]
        }
        computed = {n: _hubspot_value(props[n]) for n in names if n not in writable and n != "createdate"}
        assert set(computed) == READ_ONLY_IN_HUBSPOT[obj] - {"createdate"}
        response = await clients.hubspot.post(
            f"/crm/objects/2026-09/{plural}/batch/update",
            json={"inputs": [{"id": record_id, "properties": writable}]},
        )
        assert response.status_code == 200, response.text
        if computed:  # HubSpot's own calculations set these; the API refuses them
            name = min(computed)
            refused = await clients.hubspot.patch(
                f"/crm/objects/2026-09/{plural}/{record_id}", json={"properties": {name: computed[name]}}
            )
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["code"] == "READ_ONLY_VALUE"
            internal = await clients.hubspot.patch(
                f"/_admin/objects/{plural}/{record_id}",
                json={"properties": computed, "changeSource": "HUBSPOT_INTERNAL"},
            )
            assert internal.status_code == 200, internal.text
        read = await clients.hubspot.post(
            f"/crm/objects/2026-09/{plural}/batch/read",
            json={"properties": names, "inputs": [{"id": record_id}]},
        )
        assert read.status_code == 200, read.text
        values = read.json()["results"][0]["properties"]
        expected = {**writable, **computed}
        got = {n: values.get(n) for n in expected}
        assert got == expected
        assert values["createdate"]


SIMPLE_VALUES: dict[str, Any] = {"Integer": 7, "BigInt": 7, "Money": 12.5, "Decimal": 12.5, "Double": 12.5}
SIMPLE_VALUES |= {"Boolean": True}


def _dataverse_value(attribute: dict[str, Any]) -> Any:
    kind = attribute["AttributeType"]
    if kind in SIMPLE_VALUES:
        return SIMPLE_VALUES[kind]
    if kind in {"String", "Memo"}:
        return "x" * min(12, attribute.get("MaxLength") or 12)
    if kind == "DateTime":
        return "2024-05-01" if attribute["Format"] == "DateOnly" else "2024-05-01T10:00:00Z"
    if kind in {"Picklist", "State"}:
        return min(_choices(attribute))
    if kind == "Status":  # a status reason of the first state
        return min(o["Value"] for o in attribute["OptionSet"]["Options"] if o.get("State") == 0)
    raise AssertionError(f"no test value for {kind}")


async def test_after_provisioning_every_writable_mapped_column_can_be_patched_and_read(
    clients: Clients,
) -> None:
    await provision_sandbox(clients.box.daemon_settings(KafkaSettings()), _config())
    _, dataverse = mapped(standard_only=False)
    sets = await clients.entity_sets()
    names_of = {
        "systemuser": "Olive Owner",
        "campaign": "Spring campaign",
        "account": "Parent account",
        "contact": "Parent",
    }
    targets = {
        "systemuser": await clients.create_row(
            "systemuser", "systemusers", {"firstname": "Olive", "lastname": "Owner"}
        ),
        "campaign": await clients.create_row("campaign", "campaigns", {"name": names_of["campaign"]}),
        "account": await clients.create_row("account", "accounts", {"name": names_of["account"]}),
        "contact": await clients.create_row("contact", "contacts", {"lastname": names_of["contact"]}),
    }
    for table, seed in ROW.items():
        record_id = await clients.create_row(table, sets[table], seed)
        attributes = await clients.attributes(table)
        columns = sorted(n for (t, n) in dataverse if t == table)
        body: dict[str, Any] = {}
        lookups: dict[str, str] = {}
        for name in columns:
            attribute = attributes[name]
            if not attribute["IsValidForUpdate"]:
                continue
            if attribute["AttributeType"] in LOOKUP_TYPES:
                target = attribute["Targets"][0]
                nav = f"{name}_{target}" if attribute["AttributeType"] == "Customer" else name
                body[f"{nav}@odata.bind"] = f"/{sets[target]}({targets[target]})"
                lookups[name] = names_of[target]
            else:
                body[name] = _dataverse_value(attribute)
        assert set(lookups) == BOUND[table]
        response = await clients.dataverse.patch(f"/api/data/v9.2/{sets[table]}({record_id})", json=body)
        assert response.status_code == 204, (table, response.text)
        select = ",".join(
            f"_{n}_value" if attributes[n]["AttributeType"] in LOOKUP_TYPES else n for n in columns
        )
        read = await clients.dataverse.get(
            f"/api/data/v9.2/{sets[table]}({record_id})?$select={select}",
            headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'},
        )
        assert read.status_code == 200, read.text
        row = read.json()
        for name, value in body.items():
            if "@" not in name:
                assert row[name] == value, (table, name)
        for name, label in lookups.items():
            assert row[f"_{name}_value@OData.Community.Display.V1.FormattedValue"] == label, (table, name)
        assert row["createdon"]
