"""The packaged defaults restate default_mappings.md row for row.

Checked: the counts of its section 15, its flags, keys, associations and option sets, and spot checks of rows
from every step's table (row numbers are the reference's).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest

from consumers.config import ConflictPolicy, FieldMap, SourceKind, Step, SyncConfig, ValueType
from consumers.loader import ConfigError, default_config, describe, validate_config
from streams.keys import SourceSystem

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
L1, L2 = "l1_hubspot_contacts_to_leads", "l2_leads_to_hubspot_contacts"
S1, S2, S3 = "s1_companies_to_accounts", "s2_contacts_to_contacts", "s3_accounts_to_companies"
S4, S5 = "s4_contacts_to_hubspot_contacts", "s5_opportunities_to_deals"
RUN_ORDER = (L1, L2, S1, S2, S3, S4, S5)
LEAD_STEPS = (L1, L2)


@pytest.fixture(scope="module")
def config() -> SyncConfig:
    return default_config()


def step_named(config: SyncConfig, name: str) -> Step:
    return next(s for s in config.steps if s.name == name)


def row(config: SyncConfig, name: str, number: int) -> FieldMap:
    """Row `number` of the reference's table for that step (1-based, as printed)."""
    return step_named(config, name).fields[number - 1]


def defaults_as_data() -> dict[str, Any]:
    return default_config().model_dump(mode="json")


def test_the_defaults_ship_as_package_data() -> None:
    assert resources.files("consumers").joinpath("default_steps.yaml").is_file()


def test_steps_run_in_the_seeds_order_with_the_lead_steps_off(config: SyncConfig) -> None:
    assert tuple(s.name for s in config.steps) == RUN_ORDER
    assert {s.name: s.enabled for s in config.steps} == {n: n not in LEAD_STEPS for n in RUN_ORDER}


@pytest.mark.parametrize(
    ("name", "source", "target"),
    [
        (L1, (HS, "contact"), (DV, "lead")),
        (L2, (DV, "lead"), (HS, "contact")),
        (S1, (HS, "company"), (DV, "account")),
        (S2, (HS, "contact"), (DV, "contact")),
        (S3, (DV, "account"), (HS, "company")),
        (S4, (DV, "contact"), (HS, "contact")),
        (S5, (DV, "opportunity"), (HS, "deal")),
    ],
)
def test_step_endpoints(
    config: SyncConfig, name: str, source: tuple[SourceSystem, str], target: tuple[SourceSystem, str]
) -> None:
    step = step_named(config, name)
    assert (step.source.system, step.source.object) == source
    assert (step.target.system, step.target.object) == target
    assert step.conflict is ConflictPolicy.STEP_ORDER
    assert step.create
    assert step.deletes == "ignore"


# (rows in the table, rows enabled, rows whose target the integration creates): reference section 15.
# L1 and step 2 count their C-DV rows only: their one C-HS row reads the integration's own HubSpot property
# and writes a standard column. Step 1's five optional rows are C-DV and off.
ROW_COUNTS = {
    L1: (75, 75, 59),
    L2: (24, 24, 12),
    S1: (30, 25, 20),
    S2: (74, 74, 59),
    S3: (14, 14, 4),
    S4: (17, 17, 4),
    S5: (14, 14, 9),
}


@pytest.mark.parametrize(("name", "counts"), ROW_COUNTS.items())
def test_row_counts_per_step(config: SyncConfig, name: str, counts: tuple[int, int, int]) -> None:
    step = step_named(config, name)
    assert (len(step.fields), len(step.active_fields()), sum(f.custom for f in step.fields)) == counts


def test_row_totals(config: SyncConfig) -> None:
    assert sum(len(s.active_fields()) for s in config.enabled_steps()) == 144
    assert sum(len(step_named(config, n).fields) for n in LEAD_STEPS) == 99
    optional = [f for s in config.steps for f in s.fields if not f.enabled]
    assert [f.source for f in optional] == [
        "first_conversion_event_name",
        "first_conversion_date",
        "hs_analytics_first_touch_converting_campaign",
        "recent_conversion_event_name",
        "recent_conversion_date",
    ]


@pytest.mark.parametrize(
    ("where", "names", "expected"),
    [
        (
            (L1, 1),
            ("hs_lifecyclestage_customer_date", "cdc_becameacustomerdate"),
            {"target_type": "datetime"},
        ),
        ((L1, 11), ("hubspot_owner_id", "cdc_hubspotowner"), {"lookup": "owner_email", "custom": True}),
        ((L1, 14), ("d365_street_address_2", "address1_line2"), {"custom": False, "max_length": 250}),
        ((L1, 15), ("email", "emailaddress1"), {"max_length": 100}),
        ((L1, 26), ("hubspotscore", "cdc_hubspotscore"), {"source_type": "number", "target_type": "integer"}),
        ((L1, 44), ("hs_marketable_status", "cdc_marketingcontactstatus"), {"target_type": "bool"}),
        ((L1, 50), ("mobilephone", "mobilephone"), {"max_length": 20}),
        (
            (L1, 62),
            ("hs_object_source_label", "cdc_recordsource"),
            {"source_type": "string", "options": "record_source"},
        ),
        ((L1, 74), ("hs_email_optout", "donotbulkemail"), {"source_type": "bool", "custom": False}),
        ((L1, 75), ("website", "websiteurl"), {"max_length": 200, "label": "Website URL -> Website"}),
        (
            (L2, 10),
            ("sync_time", "d365_last_crm_sync_date"),
            {"source_kind": SourceKind.SYNC_TIME, "target_type": "datetime", "custom": True},
        ),
        ((L2, 13), ("ownerid", "d365_lead_owner"), {"lookup": "formatted_value"}),
        ((L2, 18), ("salesstage", "d365_lead_stage"), {"options": "lead_sales_stage"}),
        ((L2, 22), ("subject", "d365_lead_topic"), {"custom": True, "max_length": None}),
        ((S1, 2), ("name", "name"), {"max_length": 160}),
        ((S1, 3), ("hubspot_owner_id", "cdc_hubspotowner"), {"lookup": "owner_email"}),
        ((S1, 6), ("description", "description"), {"max_length": 2000}),
        ((S1, 7), ("industry", "cdc_hubspotindustry"), {"source_type": "option", "target_type": "string"}),
        ((S1, 8), ("hs_analytics_latest_source", "cdc_latestsource"), {"options": "traffic_source"}),
        ((S1, 24), ("address2", "address1_line2"), {"custom": False}),
        (
            (S1, 30),
            ("recent_conversion_date", "cdc_recentconversiondate"),
            {"enabled": False, "custom": True},
        ),
        ((S2, 9), ("city", "address1_city"), {"max_length": 80, "label": "City -> Address 1: City"}),
        ((S2, 42), ("lifecyclestage", "cdc_lifecyclestage"), {"options": "lifecycle_stage"}),
        ((S2, 57), ("phone", "telephone1"), {"custom": False}),
        ((S2, 73), ("hs_email_optout", "donotbulkemail"), {"options": "do_not_bulk_email"}),
        ((S3, 8), ("createdon", "d365_created_on"), {"source_type": "datetime", "custom": True}),
        ((S3, 10), ("industrycode", "d365_industry"), {"options": "industry_code"}),
        ((S3, 13), ("statecode", "d365_account_record_status"), {"options": "account_state"}),
        ((S4, 5), ("address1_line2", "d365_street_address_2"), {"custom": True}),
        ((S4, 16), ("statecode", "d365_contact_record_status"), {"options": "contact_state"}),
        ((S5, 2), ("actualclosedate", "closedate"), {"source_type": "date", "target_type": "datetime"}),
        ((S5, 3), ("actualvalue", "amount"), {"source_type": "number", "target_type": "number"}),
        ((S5, 7), ("estimatedclosedate", "d365_estimated_close_date"), {"target_type": "date"}),
        ((S5, 10), ("campaignid", "d365_source_campaign"), {"lookup": "formatted_value"}),
        ((S5, 12), ("statuscode", "dealstage"), {"options": "opportunity_deal_stage", "custom": False}),
        ((S5, 13), ("statuscode", "d365_status_reason"), {"options": "opportunity_status_reason"}),
        ((S5, 14), ("name", "dealname"), {"label": "Topic -> Deal Name"}),
    ],
)
def test_rows(
    config: SyncConfig, where: tuple[str, int], names: tuple[str, str], expected: dict[str, object]
) -> None:
    field = row(config, *where)
    assert (field.source, field.target) == names
    assert {k: getattr(field, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("name", "flag", "match"),
    [
        (L1, "sync_to_d365_lead", ("email", "emailaddress1", "email")),
        (L2, "cdc_synctohubspot", ("emailaddress1", "email", "email")),
        (S1, "sync_to_d365", ("name", "name", "name")),
        (S2, "sync_to_d365", ("email", "emailaddress1", "email")),
        (S3, "cdc_synctohubspot", ("name", "name", "name")),
        (S4, "cdc_synctohubspot", ("emailaddress1", "email", "email")),
        (S5, "cdc_synctohubspot", ("name", "dealname", "name")),
    ],
)
def test_flags_and_match_keys(config: SyncConfig, name: str, flag: str, match: tuple[str, str, str]) -> None:
    step = step_named(config, name)
    assert step.filter is not None
    assert step.filter.flag == flag
    assert (step.match.source, step.match.target, step.match.kind) == match
    assert not step.match.create_when_empty
    # The match key is also a mapped row of the step.
    assert (step.match.source, step.match.target) in {(f.source, f.target) for f in step.fields}


def test_associations(config: SyncConfig) -> None:
    found = {s.name: [(a.hubspot, a.dataverse) for a in s.associations] for s in config.steps}
    assert found == {
        L1: [],
        L2: [],
        S1: [],
        S2: [("company:1", "parentcustomerid:account")],
        S3: [],
        S4: [("company:1", "parentcustomerid:account")],
        S5: [("contact:3", "parentcontactid:contact"), ("company:5", "parentaccountid:account")],
    }
    deal_company = step_named(config, S5).associations[1]
    assert (deal_company.hubspot_object, deal_company.hubspot_type_id) == ("company", 5)
    assert (deal_company.dataverse_lookup, deal_company.dataverse_table) == ("parentaccountid", "account")


def test_last_crm_sync_date_is_the_only_daemon_written_row(config: SyncConfig) -> None:
    """Reference section 14 item 5: the daemon writes its own last-sync time into "Last CRM Sync Date"
    (L2 row 10); no other step's table carries that label, so no other row is written by the daemon."""
    written = [(s.name, f.target) for s in config.steps for f in s.fields if f.daemon_written]
    assert written == [(L2, "d365_last_crm_sync_date")]
    assert step_named(config, L2).fields[9] not in step_named(config, L2).record_fields()
    assert step_named(config, L2).daemon_fields() == (step_named(config, L2).fields[9],)


def test_a_daemon_written_row_reads_nothing_and_writes_a_time() -> None:
    row = FieldMap.model_validate(
        {"source_kind": "sync_time", "target": "last_sync", "target_type": "datetime"}
    )
    assert (row.source, row.daemon_written) == ("sync_time", True)
    for bad, message in (
        ({"source": "cdc_lastcrmsyncdate"}, "reads no source field"),
        ({"target_type": "number"}, "writes a time"),
        ({"options": "lead_source"}, "no option set"),
    ):
        data = {"source_kind": "sync_time", "target": "last_sync", "target_type": "datetime", **bad}
        with pytest.raises(ValueError, match=message):
            FieldMap.model_validate(data)


def test_a_step_may_not_read_what_the_daemon_writes() -> None:
    data = defaults_as_data()
    for step in data["steps"]:
        step["enabled"] = step["name"] not in (S2, S4)
    l1 = data["steps"][0]
    l1["fields"].append({"source": "d365_last_crm_sync_date", "target": "cdc_lastcrmsyncdate", "label": "x"})
    with pytest.raises(
        ConfigError, match=r"the daemon writes it .* step 'l1_hubspot_contacts_to_leads' may not"
    ):
        validate_config(data)


def test_every_option_set_is_defined_and_used(config: SyncConfig) -> None:
    used = {f.options for s in config.steps for f in s.fields if f.options is not None}
    assert used == set(config.option_sets)


def test_enumerated_rows_name_an_option_set(config: SyncConfig) -> None:
    for step in config.steps:
        for field in step.fields:
            if ValueType.OPTION in (field.source_type, field.target_type):
                assert field.options is not None, (step.name, field.source, field.target)


def test_names_are_internal_names_and_rows_have_labels(config: SyncConfig) -> None:
    internal = re.compile(r"^[a-z][a-z0-9_]*$")
    for step in config.steps:
        assert all(internal.match(f.source) and internal.match(f.target) for f in step.fields), step.name
        assert all(f.label for f in step.fields), step.name
        targets = [f.target for f in step.fields]
        assert len(targets) == len(set(targets)), f"{step.name} writes a target twice"


def test_lengths_are_given_for_dataverse_targets_only(config: SyncConfig) -> None:
    for step in config.steps:
        if step.target.system is HS:
            assert all(f.max_length is None for f in step.fields), step.name


@pytest.mark.parametrize(
    ("name", "hubspot_values"),
    [
        ("lifecycle_stage", ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead"]),
        ("hubspot_lead_status", ["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED"]),
        ("traffic_source", ["ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA"]),
    ],
)
def test_choices_created_in_dataverse_take_generated_values(
    config: SyncConfig, name: str, hubspot_values: list[str]
) -> None:
    options = config.option_sets[name]
    assert list(options.hubspot)[: len(hubspot_values)] == hubspot_values
    assert list(options.dataverse) == [str(100_000_000 + i) for i in range(len(options.hubspot))]
    assert list(options.dataverse.values()) == list(options.hubspot.values())


@pytest.mark.parametrize(
    ("name", "size", "first", "last"),
    [
        ("lead_source", 10, ("1", "Advertisement"), ("10", "Other")),
        ("lead_rating", 3, ("1", "Hot"), ("3", "Cold")),
        ("lead_state", 3, ("0", "Open"), ("2", "Disqualified")),
        ("lead_status_reason", 7, ("1", "New"), ("7", "Canceled")),
        ("lead_sales_stage", 1, ("0", "Qualify"), ("0", "Qualify")),
        ("industry_code", 33, ("1", "Accounting"), ("33", "Wholesale")),
        ("contact_state", 2, ("0", "Active"), ("1", "Inactive")),
        ("account_state", 2, ("0", "Active"), ("1", "Inactive")),
        ("opportunity_state", 3, ("0", "Open"), ("2", "Lost")),
        ("opportunity_status_reason", 5, ("1", "In Progress"), ("5", "Out-Sold")),
    ],
)
def test_dynamics_choices_become_hubspot_options_with_the_same_values(
    config: SyncConfig, name: str, size: int, first: tuple[str, str], last: tuple[str, str]
) -> None:
    options = config.option_sets[name]
    assert options.hubspot == options.dataverse
    items = list(options.dataverse.items())
    assert (len(items), items[0], items[-1]) == (size, first, last)


def test_company_industry_is_written_as_its_label(config: SyncConfig) -> None:
    industry = config.option_sets["hubspot_company_industry"]
    assert len(industry.hubspot) == 148
    assert industry.hubspot["COMPUTER_SOFTWARE"] == "Computer Software"
    assert not industry.dataverse  # the Dataverse column is text


def test_status_reason_to_deal_stage(config: SyncConfig) -> None:
    stages = config.option_sets["opportunity_deal_stage"]
    assert stages.overrides == {"3": "closedwon", "4": "closedlost", "5": "closedlost"}
    assert stages.create_overrides == {"1": "appointmentscheduled", "2": "appointmentscheduled"}
    assert list(stages.hubspot) == [
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ]
    # No Dataverse status reason label is a stage label: that is why the overrides exist.
    labels = {label.casefold() for label in stages.hubspot.values()}
    assert not labels & {label.casefold() for label in stages.dataverse.values()}


def test_overrides_map_source_values_to_target_values(config: SyncConfig) -> None:
    for step in config.steps:
        for field in step.fields:
            if field.options is None:
                continue
            options = config.option_sets[field.options]
            source, target = (
                (options.hubspot, options.dataverse)
                if step.source.system is HS
                else (options.dataverse, options.hubspot)
            )
            for value, mapped in (options.overrides | options.create_overrides).items():
                assert value in source, (field.options, value)
                assert mapped in target, (field.options, mapped)


def test_lead_and_contact_steps_are_exclusive() -> None:
    data = defaults_as_data()
    data["steps"][0]["enabled"] = True
    with pytest.raises(ConfigError) as caught:
        validate_config(data, source="leads.yaml")
    message = str(caught.value)
    assert message.startswith("leads.yaml: lead steps (l1_hubspot_contacts_to_leads) and contact steps")
    assert S2 in message
    assert "allow_leads_with_contacts" in message

    data["allow_leads_with_contacts"] = True
    assert validate_config(data).steps_for(step_named(default_config(), L1).pair)


def test_leads_exclusive_set_up() -> None:
    """The seed's other set-up: L1, L2, 1, 3, 5 with the contact steps switched off by hand."""
    data = defaults_as_data()
    for step in data["steps"]:
        step["enabled"] = step["name"] not in (S2, S4)
    config = validate_config(data)
    assert [s.name for s in config.enabled_steps()] == [L1, L2, S1, S3, S5]


def test_lead_steps_run_first() -> None:
    data = defaults_as_data()
    for step in data["steps"]:
        step["enabled"] = step["name"] not in (S2, S4)
    data["steps"].insert(3, data["steps"].pop(0))  # L1 after step 1
    with pytest.raises(ConfigError, match="lead steps run first"):
        validate_config(data)


def test_describe_the_defaults(config: SyncConfig) -> None:
    summary = describe(config)
    assert list(summary) == ["steps"]
    assert [s["name"] for s in summary["steps"]] == list(RUN_ORDER)
    first = summary["steps"][2]
    assert set(first) == {"name", "enabled", "source", "target", "fields"}
    assert first["enabled"] is True
    assert first["source"] == {"system": "hubspot", "object": "company"}
    assert first["target"] == {"system": "dataverse", "object": "account"}
    assert len(first["fields"]) == 25  # the five optional rows are off
    assert first["fields"][0] == {
        "source": "city",
        "target": "address1_city",
        "direction": "hubspot->dataverse",
    }
    deals = summary["steps"][6]
    assert {f["direction"] for f in deals["fields"]} == {"dataverse->hubspot"}
    assert summary["steps"][0]["enabled"] is False
    assert sum(len(s["fields"]) for s in summary["steps"] if s["enabled"]) == 144
