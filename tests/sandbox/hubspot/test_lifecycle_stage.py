"""The lifecycle stage through the API moves forward only, as HubSpot's does: an earlier stage is answered
with success and not applied; cleared first ("", a request of its own), an earlier stage may be set
(integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333). A user (the admin API) moves it freely."""

from __future__ import annotations

import httpx

BASE = "/crm/objects/2026-09/contacts"


async def stage(client: httpx.AsyncClient, contact: str) -> str | None:
    body = (await client.get(f"{BASE}/{contact}", params={"properties": "lifecyclestage"})).json()
    value: str | None = body["properties"].get("lifecyclestage")
    return value


async def patch(client: httpx.AsyncClient, contact: str, value: str) -> None:
    answer = await client.patch(f"{BASE}/{contact}", json={"properties": {"lifecyclestage": value}})
    assert answer.status_code == 200, answer.text


async def test_an_api_write_moves_the_stage_forward_only(client: httpx.AsyncClient) -> None:
    created = await client.post(
        BASE, json={"properties": {"email": "life@example.com", "lifecyclestage": "lead"}}
    )
    contact = created.json()["id"]
    await patch(client, contact, "customer")
    assert await stage(client, contact) == "customer"
    await patch(client, contact, "lead")  # backwards: success, nothing changes
    assert await stage(client, contact) == "customer"
    batch = {"inputs": [{"id": contact, "properties": {"lifecyclestage": "opportunity"}}]}
    assert (await client.post(f"{BASE}/batch/update", json=batch)).status_code == 200
    assert await stage(client, contact) == "customer"
    await patch(client, contact, "")  # cleared first, then an earlier stage is taken
    await patch(client, contact, "lead")
    assert await stage(client, contact) == "lead"


async def test_a_user_moves_the_stage_freely(client: httpx.AsyncClient) -> None:
    created = await client.post(
        BASE, json={"properties": {"email": "user@example.com", "lifecyclestage": "customer"}}
    )
    contact = created.json()["id"]
    answer = await client.patch(
        f"/_admin/objects/contacts/{contact}", json={"properties": {"lifecyclestage": "lead"}, "userId": 3}
    )
    assert answer.status_code == 200, answer.text
    assert await stage(client, contact) == "lead"
