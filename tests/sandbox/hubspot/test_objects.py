"""CRM v3 single-object routes and the properties API: shapes, status codes, error bodies (fact sheet §3)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from cdc.sandbox.hubspot import HubSpotSandbox

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def assert_error(body: dict[str, Any], category: str) -> None:
    assert body["status"] == "error"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert UUID.match(body["correlationId"])
    assert body["category"] == category


async def create(client: httpx.AsyncClient, kind: str, **properties: str) -> dict[str, Any]:
    response = await client.post(f"/crm/objects/2026-09/{kind}", json={"properties": properties})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_and_read_a_contact(client: httpx.AsyncClient) -> None:
    created = await create(client, "contacts", email="ada@example.com", firstname="Ada")
    assert set(created) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert isinstance(created["id"], str)
    assert int(created["id"]) > 2**31  # ids exceed 2^31 as HubSpot's do
    assert created["archived"] is False
    assert ISO.match(created["createdAt"])
    assert created["properties"]["hs_object_id"] == created["id"]
    assert created["properties"]["email"] == "ada@example.com"
    assert ISO.match(created["properties"]["createdate"])
    assert created["properties"]["lastmodifieddate"] == created["properties"]["createdate"]

    read = (await client.get(f"/crm/objects/2026-09/contacts/{created['id']}")).json()
    assert read["properties"] == {
        "firstname": "Ada",
        "lastname": None,
        "email": "ada@example.com",
        "createdate": created["properties"]["createdate"],
        "hs_object_id": created["id"],
        "lastmodifieddate": created["properties"]["lastmodifieddate"],
    }
    some = (
        await client.get(f"/crm/objects/2026-09/contacts/{created['id']}?properties=firstname,phone")
    ).json()
    assert set(some["properties"]) == {"firstname", "phone", "createdate", "hs_object_id", "lastmodifieddate"}
    by_email = await client.get("/crm/objects/2026-09/contacts/ADA@example.com?idProperty=email")
    assert by_email.json()["id"] == created["id"]


async def test_companies_and_deals_use_hs_lastmodifieddate(client: httpx.AsyncClient) -> None:
    company = await create(client, "companies", name="Acme", domain="acme.test")
    assert "hs_lastmodifieddate" in company["properties"]
    deal = await create(client, "0-3", dealname="Big", amount="100.5", closedate="1700000000000")
    assert deal["properties"]["closedate"] == "2023-11-14T22:13:20.000Z"
    read = (await client.get(f"/crm/objects/2026-09/deals/{deal['id']}")).json()
    assert set(read["properties"]) >= {
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "hs_lastmodifieddate",
    }


async def test_update_moves_last_modified_and_clears_with_empty_string(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    created = await create(client, "contacts", email="b@example.com", phone="1")
    sandbox.clock.advance(5)
    response = await client.patch(
        f"/crm/objects/2026-09/contacts/{created['id']}", json={"properties": {"phone": ""}}
    )
    assert response.status_code == 200
    body = response.json()
    assert "phone" not in body["properties"]
    assert body["properties"]["lastmodifieddate"] > created["properties"]["lastmodifieddate"]
    assert body["updatedAt"] > created["updatedAt"]
    by_email = await client.patch(
        "/crm/objects/2026-09/contacts/b@example.com?idProperty=email",
        json={"properties": {"firstname": "B"}},
    )
    assert by_email.json()["properties"]["firstname"] == "B"


async def test_errors_have_hubspots_shape(client: httpx.AsyncClient) -> None:
    await create(client, "contacts", email="dup@example.com")
    conflict = await client.post(
        "/crm/objects/2026-09/contacts", json={"properties": {"email": "DUP@example.com"}}
    )
    assert conflict.status_code == 409
    assert_error(conflict.json(), "CONFLICT")
    assert conflict.json()["message"].startswith("Contact already exists. Existing ID: ")

    unknown = await client.post(
        "/crm/objects/2026-09/contacts", json={"properties": {"no_such": "x", "email": "n@x.io"}}
    )
    assert unknown.status_code == 400
    assert_error(unknown.json(), "VALIDATION_ERROR")
    assert unknown.json()["errors"] == [
        {
            "message": 'Property "no_such" does not exist',
            "code": "PROPERTY_DOESNT_EXIST",
            "context": {"propertyName": ["no_such"]},
        }
    ]
    read_only = await client.post("/crm/objects/2026-09/contacts", json={"properties": {"hs_object_id": "1"}})
    assert read_only.status_code == 400
    missing = await client.get("/crm/objects/2026-09/contacts/999")
    assert missing.status_code == 404
    assert_error(missing.json(), "OBJECT_NOT_FOUND")
    not_json = await client.post("/crm/objects/2026-09/contacts", content=b"{nope")
    assert not_json.status_code == 400
    bad_number = await client.post("/crm/objects/2026-09/deals", json={"properties": {"amount": "lots"}})
    assert bad_number.status_code == 400


async def test_missing_or_wrong_token_is_401(sandbox: HubSpotSandbox) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.hubapi.test") as anonymous:
        for headers in ({}, {"Authorization": "Bearer pat-na1-wrong"}, {"Authorization": sandbox.token}):
            response = await anonymous.get("/crm/objects/2026-09/contacts", headers=headers)
            assert response.status_code == 401
            assert_error(response.json(), "INVALID_AUTHENTICATION")
            assert "X-HubSpot-RateLimit-Max" not in response.headers


async def test_archive_hides_the_record_and_frees_its_email(client: httpx.AsyncClient) -> None:
    created = await create(client, "contacts", email="gone@example.com")
    assert (await client.delete(f"/crm/objects/2026-09/contacts/{created['id']}")).status_code == 204
    assert (await client.get(f"/crm/objects/2026-09/contacts/{created['id']}")).status_code == 404
    archived = (await client.get(f"/crm/objects/2026-09/contacts/{created['id']}?archived=true")).json()
    assert archived["archived"] is True
    assert ISO.match(archived["archivedAt"])
    assert (await client.delete(f"/crm/objects/2026-09/contacts/{created['id']}")).status_code == 204
    await create(client, "contacts", email="gone@example.com")


async def test_list_pages_with_after(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, "companies", name=f"C{n}"))["id"] for n in range(5)]
    first = (await client.get("/crm/objects/2026-09/companies?limit=2")).json()
    assert [r["id"] for r in first["results"]] == ids[:2]
    after = first["paging"]["next"]["after"]
    second = (await client.get(f"/crm/objects/2026-09/companies?limit=3&after={after}")).json()
    assert [r["id"] for r in second["results"]] == ids[2:]
    assert "paging" not in second


async def test_properties_api_lists_and_creates_custom_properties(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/crm/properties/2026-09/contacts")).json()["results"]
    names = {p["name"] for p in listed}
    assert {"email", "firstname", "lastmodifieddate", "hs_object_id"} <= names
    email = next(p for p in listed if p["name"] == "email")
    assert email["hasUniqueValue"] is True
    assert {"type", "fieldType", "groupName", "label", "options"} <= set(email)

    checkbox = {
        "name": "sync_to_dynamics",
        "label": "Sync to Dynamics",
        "type": "bool",
        "fieldType": "booleancheckbox",
        "groupName": "contactinformation",
    }
    created = await client.post("/crm/properties/2026-09/contacts", json=checkbox)
    assert created.status_code == 201
    assert created.json()["name"] == "sync_to_dynamics"
    assert [o["value"] for o in created.json()["options"]] == ["true", "false"]
    again = await client.post("/crm/properties/2026-09/contacts", json=checkbox)
    assert again.status_code == 409
    assert (await client.get("/crm/properties/2026-09/contacts/sync_to_dynamics")).status_code == 200
    assert (await client.get("/crm/properties/2026-09/contacts/nope")).status_code == 404

    record = await create(client, "contacts", email="c@example.com", sync_to_dynamics="true")
    assert record["properties"]["sync_to_dynamics"] == "true"
    bad = await client.post(
        "/crm/objects/2026-09/contacts", json={"properties": {"sync_to_dynamics": "maybe"}}
    )
    assert bad.status_code == 400


async def test_custom_unique_property_gives_409(client: httpx.AsyncClient) -> None:
    spec = {
        "name": "d365_id",
        "label": "D365 id",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
        "hasUniqueValue": True,
    }
    assert (await client.post("/crm/properties/2026-09/contacts", json=spec)).status_code == 201
    await create(client, "contacts", d365_id="abc")
    clash = await client.post("/crm/objects/2026-09/contacts", json={"properties": {"d365_id": "abc"}})
    assert clash.status_code == 409


async def test_property_history_records_who_wrote(client: httpx.AsyncClient, sandbox: HubSpotSandbox) -> None:
    created = await create(client, "contacts", email="h@example.com", firstname="One")
    await client.patch(
        f"/crm/objects/2026-09/contacts/{created['id']}", json={"properties": {"firstname": "Two"}}
    )
    body = (
        await client.get(f"/crm/objects/2026-09/contacts/{created['id']}?propertiesWithHistory=firstname")
    ).json()
    history = body["propertiesWithHistory"]["firstname"]
    assert [h["value"] for h in history] == ["Two", "One"]
    assert history[0]["sourceType"] == "INTEGRATION"
    assert history[0]["sourceId"] == str(sandbox.app_id)
    assert ISO.match(history[0]["timestamp"])
