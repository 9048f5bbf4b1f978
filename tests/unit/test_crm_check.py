"""The configuration against the CRMs' metadata (`consumers.crm_check`), without a CRM: each refusal names
the step and the field row; what fits, and what was not read, says nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from consumers.config import SyncConfig
from consumers.crm_check import Fields, check_against_crm, fields_needed
from consumers.loader import field_lines, load_config
from consumers.ports import FieldInfo
from streams.keys import SourceSystem

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
WHERE = "step 'companies_to_accounts' field"


def config(*fields: dict[str, Any], option_sets: dict[str, Any] | None = None) -> SyncConfig:
    return SyncConfig.model_validate(
        {
            "steps": [
                {
                    "name": "companies_to_accounts",
                    "source": {"system": "hubspot", "object": "company"},
                    "target": {"system": "dataverse", "object": "account"},
                    "match": {"source": "name", "target": "name", "kind": "name"},
                    "fields": [{"source": "name", "target": "name"}, *fields],
                }
            ],
            "option_sets": option_sets or {},
        }
    )


CRM: Fields = {
    (HS, "company"): {
        "name": FieldInfo("string"),
        "industry": FieldInfo("enumeration", options=frozenset({"SOFTWARE"})),
        "hubspot_owner_id": FieldInfo("enumeration"),
    },
    (DV, "account"): {
        "name": FieldInfo("String"),
        "createdon": FieldInfo("DateTime", writable=False),
        "revenue": FieldInfo("Money"),
        "industrycode": FieldInfo("Picklist", options=frozenset({"1", "2"})),
        "ownerid": FieldInfo("Owner"),
    },
}


def test_a_fitting_configuration_has_no_problem() -> None:
    fits = config(
        {"source": "industry", "target": "industrycode", "source_type": "option", "target_type": "option",
         "options": "industry"},
        option_sets={"industry": {"hubspot": {"SOFTWARE": "Software"}, "dataverse": {"1": "Software"}}},
    )  # fmt: skip
    assert check_against_crm(fits, CRM) == []
    assert fields_needed(fits) == {(HS, "company"): {"industry"}, (DV, "account"): {"industrycode"}}


def test_each_refusal_names_step_and_row() -> None:
    broken = config(
        {"source": "domain", "target": "name"},
        {"source": "numberofemployees", "target": "revenue", "target_type": "datetime"},
        {"source": "createdate", "target": "createdon", "target_type": "datetime"},
        {"source": "website", "target": "cdc_website", "custom": True},
    )
    assert check_against_crm(broken, CRM) == [
        f"{WHERE} 2 ('domain' -> 'name'): target 'name' is written by field 1 too; map each once",
        f"{WHERE} 3 ('numberofemployees' -> 'revenue'): a datetime cannot be written to "
        "dataverse.account.revenue (Money)",
        f"{WHERE} 4 ('createdate' -> 'createdon'): dataverse.account.createdon is read-only",
        f"{WHERE} 5 ('website' -> 'cdc_website'): dataverse.account has no field 'cdc_website' (custom: "
        "`cdc provision` creates it)",
    ]


def test_unknown_option_values_are_named_on_each_side_unless_the_set_is_live() -> None:
    row = {"source": "industry", "target": "industrycode", "source_type": "option", "target_type": "option",
           "options": "industry"}  # fmt: skip
    sets = {"industry": {"hubspot": {"RETAIL": "Retail"}, "dataverse": {"9": "Retail"}}}
    assert check_against_crm(config(row, option_sets=sets), CRM) == [
        f"{WHERE} 2 ('industry' -> 'industrycode'): option set 'industry' lists value(s) RETAIL that "
        "hubspot.company.industry does not have",
        f"{WHERE} 2 ('industry' -> 'industrycode'): option set 'industry' lists value(s) 9 that "
        "dataverse.account.industrycode does not have",
    ]
    live = {"industry": {**sets["industry"], "live": True}}
    assert check_against_crm(config(row, option_sets=live), CRM) == []


def test_an_object_not_read_and_a_disabled_row_are_not_checked() -> None:
    assert check_against_crm(config({"source": "x", "target": "y"}), {}) == []
    assert check_against_crm(config({"source": "x", "target": "y", "enabled": False}), CRM) == []


def test_a_problem_names_the_line_of_its_row(tmp_path: Path) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(config({"source": "domain", "target": "name"}).model_dump(mode="json")))
    lines = field_lines(path)
    row = path.read_text().splitlines()[lines[("companies_to_accounts", 2)] - 1]
    assert row.strip().startswith("- ")
    assert check_against_crm(load_config(path), CRM, lines) == [
        f"{WHERE} 2 at line {lines[('companies_to_accounts', 2)]} ('domain' -> 'name'): target 'name' is "
        "written by field 1 too; map each once"
    ]
    assert field_lines(tmp_path / "gone.yaml") == {}


def test_an_owner_row_fits_the_owner_fields_both_ways() -> None:
    """``lookup: owner`` rows name Dataverse's owner by its value property ``_ownerid_value`` (the metadata
    calls the attribute ``ownerid``) and write HubSpot's ``hubspot_owner_id``, an enumeration of owners."""
    forward = config({"source": "hubspot_owner_id", "target": "_ownerid_value", "lookup": "owner"})
    assert check_against_crm(forward, CRM) == []
    back = SyncConfig.model_validate(
        {
            "steps": [
                {
                    "name": "accounts_to_companies",
                    "source": {"system": "dataverse", "object": "account"},
                    "target": {"system": "hubspot", "object": "company"},
                    "match": {"source": "name", "target": "name", "kind": "name"},
                    "fields": [{"source": "_ownerid_value", "target": "hubspot_owner_id", "lookup": "owner"}],
                }
            ]
        }
    )
    assert check_against_crm(back, CRM) == []
    text = config({"source": "hubspot_owner_id", "target": "_ownerid_value"})  # no lookup: a name as text
    assert check_against_crm(text, CRM) == []
