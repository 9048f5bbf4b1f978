"""Admin API and determinism: seeded credentials and ids, inspection, call accounting, the clock."""

from __future__ import annotations

import asyncio

import httpx

from cdc.sandbox.hubspot import HubSpotSandbox


async def run_script(seed: int) -> tuple[str, str, list[str]]:
    sandbox = HubSpotSandbox(seed=seed)
    transport = httpx.ASGITransport(app=sandbox.app)
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://hs", headers=headers) as client:
        ids = [
            (
                await client.post(
                    "/crm/objects/2026-09/contacts", json={"properties": {"email": f"{n}@x.io"}}
                )
            ).json()["id"]
            for n in range(3)
        ]
    return sandbox.token, sandbox.client_secret, ids


async def test_same_seed_same_credentials_and_ids() -> None:
    first, second, other = await run_script(3), await run_script(3), await run_script(4)
    assert first == second
    assert first[0] != other[0]
    assert first[0].startswith("pat-na1-")
    assert first[2] != other[2]


async def test_explicit_credentials_win() -> None:
    sandbox = HubSpotSandbox(token="tok", client_secret="sec", app_id=5, portal_id=6)
    assert (sandbox.token, sandbox.client_secret, sandbox.app_id, sandbox.portal_id) == ("tok", "sec", 5, 6)


async def test_inspect_edit_and_count(client: httpx.AsyncClient, sandbox: HubSpotSandbox) -> None:
    info = (await client.get("/_admin/info")).json()
    assert info["token"] == sandbox.token
    assert info["appId"] == sandbox.app_id
    seeded = (await client.post("/_admin/seed", json={"contacts": [{"email": "a@x.io"}]})).json()
    contact = seeded["contacts"][0]
    updated = await client.patch(
        f"/_admin/objects/contacts/{contact}", json={"properties": {"firstname": "A"}, "userId": 3}
    )
    assert updated.json()["properties"]["firstname"] == "A"
    history = updated.json()["propertiesWithHistory"]["firstname"][0]
    assert (history["sourceType"], history["sourceId"]) == ("CRM_UI", "userId:3")
    assert (await client.get("/_admin/objects/contacts")).json()["results"][0]["id"] == contact
    company = (await client.post("/_admin/objects/companies", json={"properties": {"name": "C"}})).json()[
        "id"
    ]
    await client.post(
        "/_admin/associations",
        json={
            "fromType": "contacts",
            "fromId": contact,
            "toType": "companies",
            "toId": company,
            "primary": True,
        },
    )
    links = (await client.get(f"/_admin/associations/contacts/{contact}")).json()
    assert links["companies"] == {company: [1, 279]}
    await client.post(
        "/_admin/associations/remove",
        json={"fromType": "contacts", "fromId": contact, "toType": "companies", "toId": company},
    )
    assert (await client.get(f"/_admin/associations/contacts/{contact}")).json()["companies"] == {}
    assert (await client.get("/_admin/objects/contacts/123")).status_code == 404
    assert (await client.post("/_admin/objects/nope", json={})).status_code == 400

    await client.get(f"/crm/objects/2026-09/contacts/{contact}")
    calls = (await client.get("/_admin/calls")).json()
    assert calls["by_endpoint"] == {
        "GET /crm/objects/2026-09/{objectType}/{objectId}": 1
    }  # admin calls not counted
    assert (await client.delete("/_admin/calls")).status_code == 204
    assert (await client.get("/_admin/calls")).json()["total"] == 0


async def test_clock_advance(client: httpx.AsyncClient, sandbox: HubSpotSandbox) -> None:
    before = sandbox.clock.epoch_ms()
    answer = (await client.post("/_admin/clock/advance", json={"seconds": 3600})).json()
    assert answer["now"] - before >= 3_600_000
    assert (await client.post("/_admin/clock/advance", json={"seconds": -1})).status_code == 400


async def test_concurrent_creates_keep_unique_emails(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    sandbox.limiter.update({"burst": None})

    async def create(n: int) -> int:
        body = {"properties": {"email": f"same{n % 5}@x.io"}}
        return (await client.post("/crm/objects/2026-09/contacts", json=body)).status_code

    statuses = await asyncio.gather(*(create(n) for n in range(50)))
    assert statuses.count(201) == 5
    assert statuses.count(409) == 45


async def test_a_revoked_token_is_refused_on_every_call_until_restored(client: httpx.AsyncClient) -> None:
    """`/_admin/token/revoke` and `/restore`: HubSpot's 401 shape meanwhile; admin routes stay open."""
    assert (await client.get("/crm/objects/2026-09/contacts")).status_code == 200
    assert (await client.post("/_admin/token/revoke")).json() == {"revoked": True}
    for _ in range(2):
        refused = await client.get("/crm/objects/2026-09/contacts")
        assert refused.status_code == 401
        assert refused.json()["category"] == "INVALID_AUTHENTICATION"
    assert (await client.get("/_admin/objects/contacts")).status_code == 200
    assert (await client.post("/_admin/token/restore")).json() == {"revoked": False}
    assert (await client.get("/crm/objects/2026-09/contacts")).status_code == 200
