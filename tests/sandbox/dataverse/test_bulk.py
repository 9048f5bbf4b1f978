"""CreateMultiple / UpdateMultiple / UpsertMultiple (fact sheet §2.8): shapes and all-or-nothing."""

from __future__ import annotations

import httpx

from tests.sandbox.dataverse.support import API, GUID, build_key_indexes, create

TYPE = {"@odata.type": "Microsoft.Dynamics.CRM.contact"}


async def _count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/api/data/v9.2/contacts")).json()["value"])


async def test_create_multiple_returns_ids(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/data/v9.2/contacts/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{**TYPE, "lastname": "A"}, {**TYPE, "lastname": "B"}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == f"{API}/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
    assert len(body["Ids"]) == 2
    assert all(GUID.match(i) for i in body["Ids"])


async def test_create_multiple_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/data/v9.2/contacts/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{**TYPE, "lastname": "ok"}, {**TYPE, "lastname": "bad", "nope": 1}]},
    )
    assert response.status_code == 400
    assert await _count(client) == 0
    missing_type = await client.post(
        "/api/data/v9.2/contacts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [{"lastname": "x"}]}
    )
    assert missing_type.status_code == 400


async def test_update_multiple_rolls_back_when_a_row_is_missing(client: httpx.AsyncClient) -> None:
    first = await create(client, "contacts", {"lastname": "one"})
    missing = "00000000-0000-4000-8000-00000000abcd"
    response = await client.post(
        "/api/data/v9.2/contacts/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={
            "Targets": [
                {**TYPE, "contactid": first, "lastname": "changed"},
                {**TYPE, "contactid": missing, "lastname": "x"},
            ]
        },
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x80040217"
    assert (await client.get(f"/api/data/v9.2/contacts({first})")).json()["lastname"] == "one"
    ok = await client.post(
        "/api/data/v9.2/contacts/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={"Targets": [{**TYPE, "contactid": first, "lastname": "changed"}]},
    )
    assert ok.status_code == 204
    assert (await client.get(f"/api/data/v9.2/contacts({first})")).json()["lastname"] == "changed"


async def test_upsert_multiple_by_alternate_key(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/data/v9.2/EntityDefinitions(LogicalName='contact')/Keys",
        json={"SchemaName": "cdc_email_key", "KeyAttributes": ["emailaddress1"]},
    )
    await build_key_indexes(client)
    existing = await create(client, "contacts", {"lastname": "old", "emailaddress1": "a@example.com"})
    response = await client.post(
        "/api/data/v9.2/contacts/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [
                {**TYPE, "@odata.id": "contacts(emailaddress1='a@example.com')", "lastname": "new"},
                {**TYPE, "@odata.id": "contacts(emailaddress1='b@example.com')", "lastname": "made"},
            ]
        },
    )
    assert response.status_code == 204
    rows = {r["emailaddress1"]: r for r in (await client.get("/api/data/v9.2/contacts")).json()["value"]}
    assert rows["a@example.com"]["contactid"] == existing
    assert rows["a@example.com"]["lastname"] == "new"
    assert rows["b@example.com"]["lastname"] == "made"
    no_key = await client.post(
        "/api/data/v9.2/accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": "accounts(name='x')"}]
        },
    )
    assert no_key.status_code == 400
