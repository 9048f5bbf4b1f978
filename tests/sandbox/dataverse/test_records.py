"""Single-record contract (fact sheet §2.2-2.6, 2.9, 2.10, §3, §5): shapes of rows, writes, errors."""

from __future__ import annotations

import asyncio

import httpx

from cdc.sandbox.dataverse import DataverseSandbox
from tests.sandbox.dataverse.support import API, GUID, build_key_indexes, create, key_status

FORMATTED = "@OData.Community.Display.V1.FormattedValue"


async def test_create_answers_204_with_entity_id_and_the_row_has_system_columns(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/data/v9.2/contacts", json={"firstname": "Ada", "lastname": "Lovelace"})
    assert response.status_code == 204
    assert response.content == b""
    entity_url = response.headers["OData-EntityId"]
    assert entity_url.startswith(f"{API}/contacts(")
    row = (await client.get(entity_url.removeprefix("https://org.test"))).json()
    assert row["@odata.context"] == f"{API}/$metadata#contacts/$entity"
    assert GUID.match(row["contactid"])
    assert row["@odata.etag"] == f'W/"{row["versionnumber"]}"'
    assert row["fullname"] == "Ada Lovelace"
    assert row["statecode"] == 0
    assert row["statuscode"] == 1
    assert row["createdon"] == row["modifiedon"]
    assert row["createdon"].endswith("Z")
    assert row["emailaddress1"] is None
    assert row["_parentcustomerid_value"] is None


async def test_return_representation_gives_201_with_selected_columns(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/data/v9.2/accounts?$select=name,customertypecode",
        json={"name": "Contoso", "customertypecode": 1},
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"@odata.context", "@odata.etag", "name", "customertypecode", "accountid"}
    assert body["customertypecode"] == 1
    assert "OData-EntityId" not in response.headers


async def test_versionnumber_is_one_org_wide_counter(client: httpx.AsyncClient) -> None:
    account = await create(client, "accounts", {"name": "A"})
    contact = await create(client, "contacts", {"lastname": "B"})
    first = (await client.get(f"/api/data/v9.2/accounts({account})?$select=versionnumber")).json()[
        "versionnumber"
    ]
    second = (await client.get(f"/api/data/v9.2/contacts({contact})?$select=versionnumber")).json()[
        "versionnumber"
    ]
    assert second > first
    await client.patch(f"/api/data/v9.2/accounts({account})", json={"name": "A2"})
    third = (await client.get(f"/api/data/v9.2/accounts({account})?$select=versionnumber")).json()[
        "versionnumber"
    ]
    assert third > second


async def test_choices_and_lookups_with_annotations(client: httpx.AsyncClient) -> None:
    account = await create(client, "accounts", {"name": "Fabrikam", "customertypecode": 1, "revenue": 1500.5})
    contact = await create(
        client,
        "contacts",
        {"lastname": "Doe", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
    )
    plain = (await client.get(f"/api/data/v9.2/contacts({contact})?$select=_parentcustomerid_value")).json()
    assert plain["_parentcustomerid_value"] == account
    assert not any("@" in key for key in plain if key != "@odata.etag" and not key.startswith("@odata"))
    annotated = (
        await client.get(
            f"/api/data/v9.2/contacts({contact})?$select=_parentcustomerid_value,statecode",
            headers={"Prefer": 'odata.include-annotations="*"'},
        )
    ).json()
    assert annotated[f"_parentcustomerid_value{FORMATTED}"] == "Fabrikam"
    assert annotated["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert annotated["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == (
        "parentcustomerid_account"
    )
    assert annotated[f"statecode{FORMATTED}"] == "Active"
    account_row = (
        await client.get(
            f"/api/data/v9.2/accounts({account})?$select=customertypecode,revenue",
            headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'},
        )
    ).json()
    assert account_row["customertypecode"] == 1
    assert account_row[f"customertypecode{FORMATTED}"] == "Competitor"
    assert account_row[f"revenue{FORMATTED}"] == "$1,500.50"


async def test_unknown_column_and_bad_values_get_documented_errors(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/api/data/v9.2/contacts", json={"lastname": "X", "cdc_nope": "1"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "0x80048d19"
    assert "cdc_nope" in unknown.json()["error"]["message"]
    assert set(unknown.json()) == {"error"}
    assert set(unknown.json()["error"]) == {"code", "message"}
    choice = await client.post("/api/data/v9.2/accounts", json={"name": "X", "customertypecode": 99})
    assert choice.status_code == 400
    assert "outside the valid range" in choice.json()["error"]["message"]
    wrong_type = await client.post("/api/data/v9.2/accounts", json={"name": 5})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"]["code"] == "0x80048d19"
    bad_select = await client.get("/api/data/v9.2/contacts?$select=nope")
    assert bad_select.status_code == 400
    assert bad_select.json()["error"]["message"] == (
        "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.contact'."
    )
    no_set = await client.get("/api/data/v9.2/widgets")
    assert no_set.status_code == 404


async def test_missing_record_is_404_with_object_does_not_exist(client: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000001"
    response = await client.get(f"/api/data/v9.2/contacts({missing})")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "0x80040217", "message": f"contact With Id = {missing} Does Not Exist"}
    }
    assert (await client.delete(f"/api/data/v9.2/contacts({missing})")).status_code == 404
    update_only = await client.patch(
        f"/api/data/v9.2/contacts({missing})", json={"lastname": "x"}, headers={"If-Match": "*"}
    )
    assert update_only.status_code == 404


async def test_patch_updates_and_upserts_by_id(client: httpx.AsyncClient) -> None:
    contact = await create(client, "contacts", {"lastname": "One"})
    updated = await client.patch(f"/api/data/v9.2/contacts({contact})", json={"lastname": "Two"})
    assert updated.status_code == 204
    assert updated.headers["OData-EntityId"] == f"{API}/contacts({contact})"
    new_id = "11111111-2222-4333-8444-555555555555"
    upserted = await client.patch(f"/api/data/v9.2/contacts({new_id})", json={"lastname": "Three"})
    assert upserted.status_code == 204
    assert (await client.get(f"/api/data/v9.2/contacts({new_id})")).json()["lastname"] == "Three"
    representation = await client.patch(
        f"/api/data/v9.2/contacts({contact})?$select=lastname",
        json={"lastname": "Four"},
        headers={"Prefer": "return=representation"},
    )
    assert representation.status_code == 200
    assert representation.json()["lastname"] == "Four"


async def test_if_match_and_if_none_match(client: httpx.AsyncClient) -> None:
    contact = await create(client, "contacts", {"lastname": "Etag"})
    etag = (await client.get(f"/api/data/v9.2/contacts({contact})")).json()["@odata.etag"]
    ok = await client.patch(
        f"/api/data/v9.2/contacts({contact})", json={"lastname": "E2"}, headers={"If-Match": etag}
    )
    assert ok.status_code == 204
    stale = await client.patch(
        f"/api/data/v9.2/contacts({contact})", json={"lastname": "E3"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412
    # The documented bodies (COND, fact sheet §2.4/§2.5): the code is empty.
    documented = {
        "error": {
            "code": "",
            "message": "The version of the existing record doesn't match the RowVersion property provided.",
        }
    }
    assert stale.json() == documented
    stale_delete = await client.delete(f"/api/data/v9.2/contacts({contact})", headers={"If-Match": etag})
    assert stale_delete.status_code == 412
    assert stale_delete.json() == documented
    create_only = await client.patch(
        f"/api/data/v9.2/contacts({contact})", json={"lastname": "E4"}, headers={"If-None-Match": "*"}
    )
    assert create_only.status_code == 412
    assert create_only.json() == {
        "error": {"code": "", "message": "A record with matching key values already exists."}
    }
    current = (await client.get(f"/api/data/v9.2/contacts({contact})")).json()["@odata.etag"]
    not_modified = await client.get(f"/api/data/v9.2/contacts({contact})", headers={"If-None-Match": current})
    assert not_modified.status_code == 304
    assert (
        await client.delete(f"/api/data/v9.2/contacts({contact})", headers={"If-Match": current})
    ).status_code == 204


async def test_alternate_key_upsert_only_where_a_key_is_defined(client: httpx.AsyncClient) -> None:
    by_email = await client.patch(
        "/api/data/v9.2/contacts(emailaddress1='a@example.com')", json={"lastname": "A"}
    )
    assert by_email.status_code == 400
    assert by_email.json()["error"]["message"].startswith(
        "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.contact'."
    )
    key = await client.post(
        "/api/data/v9.2/EntityDefinitions(LogicalName='account')/Keys",
        json={"SchemaName": "cdc_accountnumber_key", "KeyAttributes": ["accountnumber"]},
    )
    assert key.status_code == 204
    assert (await key_status(client, "account")) == {"cdc_accountnumber_key": "Pending"}
    early = await client.patch("/api/data/v9.2/accounts(accountnumber='ACC-1')", json={"name": "Keyed"})
    assert early.status_code == 400  # the index is not built yet (define-alternate-keys-portal)
    await build_key_indexes(client)
    created = await client.patch("/api/data/v9.2/accounts(accountnumber='ACC-1')", json={"name": "Keyed"})
    assert created.status_code == 204
    account_url = created.headers["OData-EntityId"]
    updated = await client.patch("/api/data/v9.2/accounts(accountnumber='ACC-1')", json={"name": "Keyed 2"})
    assert updated.headers["OData-EntityId"] == account_url
    row = (await client.get("/api/data/v9.2/accounts(accountnumber='ACC-1')")).json()
    assert row["name"] == "Keyed 2"
    assert row["accountnumber"] == "ACC-1"
    duplicate = await client.post("/api/data/v9.2/accounts", json={"name": "Dup", "accountnumber": "ACC-1"})
    assert duplicate.status_code == 412
    assert duplicate.json()["error"]["code"] == "0x80060892"
    bind = await client.post(
        "/api/data/v9.2/contacts",
        json={"lastname": "C", "parentcustomerid_account@odata.bind": "/accounts(accountnumber='ACC-1')"},
    )
    assert bind.status_code == 204


async def test_metadata_lists_columns_and_creates_custom_ones(client: httpx.AsyncClient) -> None:
    listing = await client.get(
        "/api/data/v9.2/EntityDefinitions(LogicalName='contact')/Attributes?$select=LogicalName,AttributeType"
    )
    assert listing.status_code == 200
    names = {a["LogicalName"]: a["AttributeType"] for a in listing.json()["value"]}
    assert names["emailaddress1"] == "String"
    assert names["parentcustomerid"] == "Customer"
    assert names["versionnumber"] == "BigInt"
    created = await client.post(
        "/api/data/v9.2/EntityDefinitions(LogicalName='contact')/Attributes",
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "SchemaName": "cdc_HubSpotId",
            "MaxLength": 100,
            "DisplayName": {"LocalizedLabels": [{"Label": "HubSpot id", "LanguageCode": 1033}]},
            "RequiredLevel": {"Value": "None"},
        },
    )
    assert created.status_code == 204
    assert "/EntityDefinitions(" in created.headers["OData-EntityId"]
    picklist = await client.post(
        "/api/data/v9.2/EntityDefinitions(LogicalName='contact')/Attributes",
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
            "SchemaName": "cdc_Tier",
            "OptionSet": {
                "Options": [{"Value": 100000000, "Label": {"LocalizedLabels": [{"Label": "Gold"}]}}]
            },
        },
    )
    assert picklist.status_code == 204
    again = await client.post(
        "/api/data/v9.2/EntityDefinitions(LogicalName='contact')/Attributes",
        json={"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "cdc_HubSpotId"},
    )
    assert again.status_code == 400
    contact = await create(
        client, "contacts", {"lastname": "Custom", "cdc_hubspotid": "123", "cdc_tier": 100000000}
    )
    row = (
        await client.get(
            f"/api/data/v9.2/contacts({contact})?$select=cdc_hubspotid,cdc_tier",
            headers={"Prefer": 'odata.include-annotations="*"'},
        )
    ).json()
    assert row["cdc_hubspotid"] == "123"
    assert row[f"cdc_tier{FORMATTED}"] == "Gold"
    options = (
        await client.get(
            "/api/data/v9.2/EntityDefinitions(LogicalName='account')/Attributes(LogicalName='customertypecode')"
            "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet"
        )
    ).json()
    assert options["OptionSet"]["Options"][0]["Value"] == 1
    entity = (await client.get("/api/data/v9.2/EntityDefinitions(LogicalName='lead')")).json()
    assert entity["EntitySetName"] == "leads"
    assert entity["PrimaryIdAttribute"] == "leadid"
    assert entity["ChangeTrackingEnabled"] is False  # off until enabled (fact sheet §1.1)
    assert entity["CanChangeTrackingBeEnabled"]["Value"] is True


async def test_state_and_status_move_together(client: httpx.AsyncClient) -> None:
    lead = await create(client, "leads", {"subject": "S", "lastname": "L"})
    await client.patch(f"/api/data/v9.2/leads({lead})", json={"statecode": 2, "statuscode": 6})
    row = (await client.get(f"/api/data/v9.2/leads({lead})?$select=statecode,statuscode")).json()
    assert (row["statecode"], row["statuscode"]) == (2, 6)
    await client.patch(f"/api/data/v9.2/leads({lead})", json={"statecode": 0})
    row = (await client.get(f"/api/data/v9.2/leads({lead})?$select=statecode,statuscode")).json()
    assert (row["statecode"], row["statuscode"]) == (0, 1)


async def test_same_seed_same_ids(sandbox: DataverseSandbox, client: httpx.AsyncClient) -> None:
    other = DataverseSandbox(seed=7)
    assert (other.tenant_id, other.client_id, other.client_secret) == (
        sandbox.tenant_id,
        sandbox.client_id,
        sandbox.client_secret,
    )
    first = await create(client, "contacts", {"lastname": "Seeded"})
    transport = httpx.ASGITransport(app=other.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://org.test") as http:
        token = (await http.post("/_admin/token")).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        assert await create(http, "contacts", {"lastname": "Seeded"}) == first


async def test_single_column_put_and_delete(client: httpx.AsyncClient) -> None:
    contact = await create(client, "contacts", {"lastname": "Col", "jobtitle": "CTO"})
    assert (
        await client.put(f"/api/data/v9.2/contacts({contact})/firstname", json={"value": "Ann"})
    ).status_code == 204
    assert (await client.delete(f"/api/data/v9.2/contacts({contact})/jobtitle")).status_code == 204
    row = (await client.get(f"/api/data/v9.2/contacts({contact})?$select=firstname,jobtitle,fullname")).json()
    assert (row["firstname"], row["jobtitle"], row["fullname"]) == ("Ann", None, "Ann Col")
    value = (await client.get(f"/api/data/v9.2/contacts({contact})/firstname")).json()
    assert value["value"] == "Ann"


async def test_concurrent_writes_get_distinct_versions(client: httpx.AsyncClient) -> None:
    await client.put("/_admin/protection", json={"enabled": False})
    ids = await asyncio.gather(*(create(client, "contacts", {"lastname": f"c{i}"}) for i in range(40)))
    rows = (await client.get("/api/data/v9.2/contacts?$select=versionnumber")).json()["value"]
    assert len(rows) == len(set(ids)) == 40
    assert len({r["versionnumber"] for r in rows}) == 40
