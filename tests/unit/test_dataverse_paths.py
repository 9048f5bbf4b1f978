"""Every Dataverse URL comes from `cdc.dataverse.paths`: the URLs the daemon requested before the module
existed are the ones it requests now."""

from __future__ import annotations

import pytest

from cdc.dataverse import paths

ROOT = paths.api_root("https://org.crm.dynamics.com/", "v9.2")
GUID = "0b7f7a48-4f8e-ee11-8179-000d3a5f6a2a"


def test_the_api_root_is_under_the_org_and_version() -> None:
    assert ROOT == "https://org.crm.dynamics.com/api/data/v9.2"


def test_row_urls() -> None:
    assert paths.rows(ROOT, "contacts") == f"{ROOT}/contacts"
    assert paths.row(ROOT, "contacts", GUID) == f"{ROOT}/contacts({GUID})"
    assert paths.row_by_key(ROOT, "contacts", "cdc_hubspotid", "O'Neil 1") == (
        f"{ROOT}/contacts(cdc_hubspotid='O''Neil%201')"
    )
    assert paths.reference("accounts", GUID) == f"/accounts({GUID})"
    assert paths.batch(ROOT) == f"{ROOT}/$batch"


def test_query_options_keep_odata_syntax_readable() -> None:
    url = paths.with_options(
        paths.rows(ROOT, "contacts"), select=["contactid", "fullname"], where="emailaddress1 eq 'a b'"
    )
    assert url == f"{ROOT}/contacts?$select=contactid,fullname&$filter=emailaddress1%20eq%20'a%20b'"
    assert paths.with_options(f"{ROOT}/contacts") == f"{ROOT}/contacts"


def test_metadata_urls() -> None:
    definition = f"{ROOT}/EntityDefinitions(LogicalName='contact')"
    assert paths.definition(ROOT, "contact") == definition
    assert paths.attributes(ROOT, "contact") == f"{definition}/Attributes"
    assert paths.keys(ROOT, "contact") == f"{definition}/Keys"
    assert paths.attribute_options(ROOT, "contact", "cdc_kind") == (
        f"{definition}/Attributes(LogicalName='cdc_kind')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
    )
    assert paths.with_options(paths.keys(ROOT, "contact"), select=["KeyAttributes"]) == (
        f"{definition}/Keys?$select=KeyAttributes"
    )
    assert paths.reactivate_key(ROOT) == f"{ROOT}/ReactivateEntityKey"


def test_a_table_name_cannot_leave_its_quotes() -> None:
    assert paths.definition(ROOT, "x')/Keys") == f"{ROOT}/EntityDefinitions(LogicalName='x%27%29/Keys')"


@pytest.mark.parametrize(
    ("logical", "entity_set"),
    [
        ("contact", "contacts"),
        ("account", "accounts"),
        ("opportunity", "opportunities"),
        ("territory", "territories"),
        ("lead", "leads"),
        ("address", "addresses"),
        ("new_category", "new_categories"),
        ("new_key", "new_keys"),
    ],
)
def test_entity_set_names_both_ways(logical: str, entity_set: str) -> None:
    assert paths.entity_set_name(logical) == entity_set
    assert paths.entity_logical_name(entity_set) == logical
