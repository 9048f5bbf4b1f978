"""Owners API: the shapes of HubSpot's read-only owner list and owner reads, paging, archived owners."""

from __future__ import annotations

import httpx

from cdc.sandbox.hubspot import HubSpotSandbox

OWNER_KEYS = {
    "id", "email", "type", "firstName", "lastName", "userId", "userIdIncludingInactive", "createdAt",
    "updatedAt", "archived", "teams",
}  # fmt: skip


async def test_owners_are_listed_in_hubspots_shape_and_read_by_id_or_user_id(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/crm/owners/2026-09")
    assert answer.status_code == 200
    owners = answer.json()["results"]
    assert len(owners) == 4
    assert "paging" not in answer.json()
    first = owners[0]
    assert set(first) == OWNER_KEYS
    assert (first["type"], first["archived"], first["teams"]) == ("PERSON", False, [])
    assert isinstance(first["id"], str)
    assert isinstance(first["userId"], int)
    assert (await client.get(f"/crm/owners/2026-09/{first['id']}")).json() == first
    by_user = await client.get(f"/crm/owners/2026-09/{first['userId']}", params={"idProperty": "userId"})
    assert by_user.json() == first
    by_email = await client.get("/crm/owners/2026-09", params={"email": first["email"].upper()})
    assert by_email.json()["results"] == [first]


async def test_owners_page_by_after_and_refuse_a_bad_limit(client: httpx.AsyncClient) -> None:
    first = (await client.get("/crm/owners/2026-09", params={"limit": 3})).json()
    assert len(first["results"]) == 3
    after = first["paging"]["next"]["after"]
    rest = (await client.get("/crm/owners/2026-09", params={"limit": 3, "after": after})).json()
    assert len(rest["results"]) == 1
    assert "paging" not in rest
    assert (await client.get("/crm/owners/2026-09", params={"limit": 501})).status_code == 400
    assert (await client.get("/crm/owners/2026-09", params={"limit": "x"})).status_code == 400
    assert (await client.get("/crm/owners/2026-09/1", params={"idProperty": "email"})).status_code == 400


async def test_an_archived_owner_is_listed_and_read_only_as_archived(client: httpx.AsyncClient) -> None:
    added = await client.post("/_admin/owners", json={"email": "new@example.com", "firstName": "New"})
    assert added.status_code == 201
    owner_id = added.json()["id"]
    assert (await client.get(f"/crm/owners/2026-09/{owner_id}")).json()["email"] == "new@example.com"
    assert (await client.post("/_admin/owners", json={"email": "new@example.com"})).status_code == 400
    assert (await client.delete(f"/_admin/owners/{owner_id}")).json()["archived"] is True

    assert (await client.get(f"/crm/owners/2026-09/{owner_id}")).status_code == 404
    archived = await client.get(f"/crm/owners/2026-09/{owner_id}", params={"archived": "true"})
    assert (archived.json()["email"], archived.json()["userId"]) == ("new@example.com", None)
    listed = (await client.get("/crm/owners/2026-09", params={"archived": "true"})).json()["results"]
    assert [o["id"] for o in listed] == [owner_id]
    assert (await client.delete("/_admin/owners/999")).status_code == 404


async def test_owners_need_the_token(sandbox: HubSpotSandbox) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.hubapi.test") as anonymous:
        assert (await anonymous.get("/crm/owners/2026-09")).status_code == 401
