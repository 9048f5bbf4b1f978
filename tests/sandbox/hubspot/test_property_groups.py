"""Property groups (``<properties>/{objectType}/groups``): list, read, create; a property names one."""

from __future__ import annotations

import httpx


async def test_each_type_starts_with_its_information_group(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/crm/properties/2026-09/contacts/groups")).json()["results"]
    assert [g["name"] for g in listed] == ["contactinformation"]
    assert set(listed[0]) == {"name", "label", "displayOrder", "archived"}
    deals = (await client.get("/crm/properties/2026-09/0-3/groups")).json()["results"]
    assert [g["name"] for g in deals] == ["dealinformation"]


async def test_create_read_and_a_second_create_is_409(client: httpx.AsyncClient) -> None:
    body = {"name": "d365_sync", "label": "Dynamics 365 sync", "displayOrder": -1}
    created = await client.post("/crm/properties/2026-09/companies/groups", json=body)
    assert created.status_code == 201, created.text
    assert created.json() == {**body, "archived": False}
    read = await client.get("/crm/properties/2026-09/companies/groups/d365_sync")
    assert read.status_code == 200
    assert read.json()["label"] == "Dynamics 365 sync"
    again = await client.post("/crm/properties/2026-09/companies/groups", json=body)
    assert again.status_code == 409
    assert again.json()["category"] == "OBJECT_ALREADY_EXISTS"
    # Groups are per object type.
    assert (await client.get("/crm/properties/2026-09/contacts/groups/d365_sync")).status_code == 404


async def test_bad_group_bodies_are_400(client: httpx.AsyncClient) -> None:
    for body in ({"label": "No name"}, {"name": "Bad Name", "label": "x"}, {"name": "ok"}):
        answer = await client.post("/crm/properties/2026-09/contacts/groups", json=body)
        assert answer.status_code == 400, body


async def test_a_property_must_name_an_existing_group(client: httpx.AsyncClient) -> None:
    spec = {"name": "d365_owner_name", "label": "D365 Owner Name", "type": "string", "fieldType": "text"}
    missing = await client.post("/crm/properties/2026-09/deals", json={**spec, "groupName": "d365_sync"})
    assert missing.status_code == 400
    assert "d365_sync" in missing.json()["message"]
    group = {"name": "d365_sync", "label": "Dynamics 365 sync"}
    assert (await client.post("/crm/properties/2026-09/deals/groups", json=group)).status_code == 201
    created = await client.post("/crm/properties/2026-09/deals", json={**spec, "groupName": "d365_sync"})
    assert created.status_code == 201, created.text
    assert created.json()["groupName"] == "d365_sync"
