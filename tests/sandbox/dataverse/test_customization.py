"""Tables and multi-table ("contact or lead") lookups made through the metadata API, as the Learn pages show
them: ``POST EntityDefinitions`` with the primary name attribute (create-update-entity-definitions-using-
web-api) and ``POST CreatePolymorphicLookupAttribute`` (webapi/multitable-lookup); the rows of such a table
bind the lookup per target (``<Lookup SchemaName>_<table>@odata.bind``) and read it back with its
``lookuplogicalname``."""

from __future__ import annotations

from typing import Any

import httpx

from cdc.dataverse import form_table
from consumers.forms import FormSubmissions
from tests.sandbox.dataverse.support import API, create, enable_change_tracking

V = "/api/data/v9.2"


def _label(text: str) -> dict[str, Any]:
    return {"LocalizedLabels": [{"Label": text, "LanguageCode": 1033}]}


def table_body(schema: str = "cdc_FormSubmission", **changes: Any) -> dict[str, Any]:
    """The table `cdc provision --dataverse` makes for form submissions (`cdc.dataverse.form_table`)."""
    return {**form_table.table_body(FormSubmissions()), "SchemaName": schema, **changes}


LOOKUP = {
    "OneToManyRelationships": [
        {
            "SchemaName": "cdc_formsubmission_contact",
            "ReferencedEntity": "contact",
            "ReferencingEntity": "cdc_formsubmission",
        },
        {
            "SchemaName": "cdc_formsubmission_lead",
            "ReferencedEntity": "lead",
            "ReferencingEntity": "cdc_formsubmission",
        },
    ],
    "Lookup": {
        "@odata.type": "Microsoft.Dynamics.CRM.ComplexLookupAttributeMetadata",
        "AttributeType": "Lookup",
        "SchemaName": "cdc_Customer",
        "DisplayName": _label("Contact or lead"),
    },
}


async def test_a_table_is_created_with_what_a_new_table_has(client: httpx.AsyncClient) -> None:
    created = await client.post(f"{V}/EntityDefinitions", json=table_body())
    assert created.status_code == 204, created.text
    assert created.headers["OData-EntityId"].startswith(f"{API}/EntityDefinitions(")
    definition = (await client.get(f"{V}/EntityDefinitions(LogicalName='cdc_formsubmission')")).json()
    assert definition["SchemaName"] == "cdc_FormSubmission"
    assert definition["EntitySetName"] == "cdc_formsubmissions"
    assert (definition["PrimaryIdAttribute"], definition["PrimaryNameAttribute"]) == (
        "cdc_formsubmissionid",
        "cdc_name",
    )
    assert definition["ObjectTypeCode"] >= 10000
    assert definition["IsCustomEntity"] is True
    assert definition["ChangeTrackingEnabled"] is False
    privileges = {p["PrivilegeType"]: p["Name"] for p in definition["Privileges"]}
    assert privileges["Create"] == "prvCreatecdc_FormSubmission"
    row = await create(client, "cdc_formsubmissions", {"cdc_name": "Contact us"})
    read = (await client.get(f"{V}/cdc_formsubmissions({row})")).json()
    assert read["cdc_name"] == "Contact us"
    assert read["statecode"] == 0
    await enable_change_tracking(client, "cdc_formsubmission")
    tracked = await client.get(f"{V}/cdc_formsubmissions", headers={"Prefer": "odata.track-changes"})
    assert "@odata.deltaLink" in tracked.json()


async def test_a_table_definition_dataverse_would_refuse_is_refused(client: httpx.AsyncClient) -> None:
    no_prefix = await client.post(f"{V}/EntityDefinitions", json=table_body("FormSubmission"))
    no_primary = await client.post(f"{V}/EntityDefinitions", json=table_body(Attributes=[]))
    bad_owner = await client.post(f"{V}/EntityDefinitions", json=table_body(OwnershipType="Nobody"))
    assert [a.status_code for a in (no_prefix, no_primary, bad_owner)] == [400, 400, 400]
    assert (await client.post(f"{V}/EntityDefinitions", json=table_body())).status_code == 204
    again = await client.post(f"{V}/EntityDefinitions", json=table_body())
    assert again.status_code == 400
    assert "already exists" in again.json()["error"]["message"]


async def test_a_contact_or_lead_lookup_binds_either_and_reads_back_which(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{V}/EntityDefinitions", json=table_body())).status_code == 204
    made = await client.post(f"{V}/CreatePolymorphicLookupAttribute", json=LOOKUP)
    assert made.status_code == 200, made.text
    assert len(made.json()["RelationshipIds"]) == 2
    assert made.json()["AttributeId"]
    attribute = await client.get(
        f"{V}/EntityDefinitions(LogicalName='cdc_formsubmission')/Attributes(LogicalName='cdc_customer')"
    )
    assert set(attribute.json()["Targets"]) == {"contact", "lead"}
    contact = await create(client, "contacts", {"lastname": "Ada"})
    lead = await create(client, "leads", {"lastname": "Lin", "subject": "Web"})
    by_contact = await create(
        client,
        "cdc_formsubmissions",
        {"cdc_name": "a", "cdc_Customer_contact@odata.bind": f"/contacts({contact})"},
    )
    by_lead = await create(
        client, "cdc_formsubmissions", {"cdc_name": "b", "cdc_Customer_lead@odata.bind": f"/leads({lead})"}
    )
    annotations = {"Prefer": 'odata.include-annotations="*"'}
    for row, target, target_id in ((by_contact, "contact", contact), (by_lead, "lead", lead)):
        read = (await client.get(f"{V}/cdc_formsubmissions({row})", headers=annotations)).json()
        assert read["_cdc_customer_value"] == target_id
        assert read["_cdc_customer_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == target
    account = await create(client, "accounts", {"name": "Not a target"})
    wrong = await client.post(
        f"{V}/cdc_formsubmissions",
        json={"cdc_name": "c", "cdc_Customer_account@odata.bind": f"/accounts({account})"},
    )
    assert wrong.status_code == 400


async def test_making_tables_and_lookups_needs_customization_privileges(client: httpx.AsyncClient) -> None:
    await client.patch("/_admin/privileges", json={"prvCreateEntity": None, "prvCreateRelationship": None})
    refused = await client.post(f"{V}/EntityDefinitions", json=table_body())
    assert refused.status_code == 403
    assert "is missing prvCreateEntity privilege" in refused.json()["error"]["message"]
    await client.patch("/_admin/privileges", json={"prvCreateEntity": "Global"})
    assert (await client.post(f"{V}/EntityDefinitions", json=table_body())).status_code == 204
    lookup = await client.post(f"{V}/CreatePolymorphicLookupAttribute", json=LOOKUP)
    assert lookup.status_code == 403
    assert "is missing prvCreateRelationship privilege" in lookup.json()["error"]["message"]
    # A new table's own privileges are in the role like any table's.
    held = (await client.get("/_admin/privileges")).json()["privileges"]
    assert held["prvReadcdc_FormSubmission"] == "Global"
