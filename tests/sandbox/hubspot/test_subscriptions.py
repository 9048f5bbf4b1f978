"""Webhooks v3 settings and subscriptions API (fact sheet §1.5), a legacy public app's, called with its
developer API key; subscription-driven routing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cdc.sandbox.hubspot import HubSpotSandbox
from tests.sandbox.hubspot.conftest import Live


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(seed=7, app_kind="legacy")


@pytest.fixture
async def client(sandbox: HubSpotSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """The webhooks API takes the developer API key (``hapikey``), not the portal's token."""
    assert sandbox.developer_api_key is not None
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="https://api.hubapi.test",
        headers={"Authorization": f"Bearer {sandbox.token}"},
        params={"hapikey": sandbox.developer_api_key},
    ) as c:
        yield c


@pytest.mark.parametrize("kind", ["project", "legacy"])
async def test_the_portal_token_cannot_manage_subscriptions(kind: str) -> None:
    """A project app's token or a service key cannot (issue 15: `cdc provision` got "the token was refused"
    from HubSpot); only a legacy public app's developer API key can, and a project app has none."""
    sandbox = HubSpotSandbox(seed=7, app_kind="legacy" if kind == "legacy" else "project")
    transport = httpx.ASGITransport(app=sandbox.app)
    bearer = {"Authorization": f"Bearer {sandbox.token}"}
    async with httpx.AsyncClient(transport=transport, base_url="https://api.hubapi.test") as api:
        path = f"/webhooks/v3/{sandbox.app_id}/subscriptions"
        refused = await api.get(path, headers=bearer)
        assert refused.status_code == 401
        assert refused.json()["category"] == "INVALID_AUTHENTICATION"
        assert (await api.get(path, params={"hapikey": sandbox.token})).status_code == 401
        assert (await api.get("/crm/objects/2026-09/contacts", headers=bearer)).status_code == 200
        if sandbox.developer_api_key is not None:
            assert (await api.get(path, params={"hapikey": sandbox.developer_api_key})).status_code == 200
    assert (sandbox.developer_api_key is None) == (kind == "project")


async def test_settings_round_trip(client: httpx.AsyncClient, sandbox: HubSpotSandbox) -> None:
    base = f"/app-webhooks/2026-09/{sandbox.app_id}"
    assert (await client.get(f"{base}/settings")).status_code == 404
    body = {
        "targetUrl": "https://cdc.example.com/webhooks/hubspot",
        "throttling": {"maxConcurrentRequests": 10, "period": "SECONDLY"},
    }
    put = await client.put(f"{base}/settings", json=body)
    assert put.status_code == 200
    got = (await client.get(f"{base}/settings")).json()
    assert got["targetUrl"] == body["targetUrl"]
    assert got["throttling"] == {"maxConcurrentRequests": 10, "period": "SECONDLY"}
    assert {"createdAt", "updatedAt"} <= set(got)
    too_few = {"targetUrl": "https://x", "throttling": {"maxConcurrentRequests": 5}}
    assert (await client.put(f"{base}/settings", json=too_few)).status_code == 400
    assert (await client.get("/app-webhooks/2026-09/1/settings")).status_code == 404
    assert (await client.delete(f"{base}/settings")).status_code == 204
    assert (await client.get(f"{base}/settings")).status_code == 404


async def test_subscriptions_start_paused_and_can_be_activated(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    base = f"/app-webhooks/2026-09/{sandbox.app_id}/subscriptions"
    created = await client.post(base, json={"eventType": "contact.propertyChange", "propertyName": "email"})
    assert created.status_code == 201
    sub = created.json()
    assert sub["active"] is False
    assert sub["eventType"] == "contact.propertyChange"
    assert sub["propertyName"] == "email"
    assert isinstance(sub["id"], str)
    patched = await client.patch(f"{base}/{sub['id']}", json={"active": True})
    assert patched.json()["active"] is True
    other = (await client.post(base, json={"eventType": "contact.creation"})).json()
    batch = await client.post(
        f"{base}/batch/update", json={"inputs": [{"id": int(other["id"]), "active": True}]}
    )
    assert batch.json()["results"][0]["active"] is True
    assert len((await client.get(base)).json()["results"]) == 2
    assert (await client.post(base, json={"eventType": "contact.propertyChange"})).status_code == 400
    no_lastmod = {"eventType": "company.propertyChange", "propertyName": "hs_lastmodifieddate"}
    assert (await client.post(base, json=no_lastmod)).status_code == 400
    assert (await client.post(base, json={"eventType": "contact.nonsense"})).status_code == 400
    assert (await client.delete(f"{base}/{other['id']}")).status_code == 204
    assert (await client.get(f"{base}/{other['id']}")).status_code == 404


async def test_with_subscriptions_required_only_active_ones_fire(live: Live) -> None:
    api, sandbox = live.api, live.sandbox
    await api.put("/_admin/webhooks", json={"require_subscriptions": True})
    api.params = api.params.set("hapikey", str(sandbox.developer_api_key))
    base = f"/app-webhooks/2026-09/{sandbox.app_id}/subscriptions"
    email = (
        await api.post(
            base, json={"eventType": "contact.propertyChange", "propertyName": "email", "active": True}
        )
    ).json()
    await api.post(base, json={"eventType": "contact.creation"})  # paused: sends nothing
    generic = (
        await api.post(base, json={"eventType": "object.deletion", "objectTypeId": "0-1", "active": True})
    ).json()
    created = (
        await api.post(
            "/crm/objects/2026-09/contacts", json={"properties": {"email": "s@x.io", "firstname": "S"}}
        )
    ).json()
    await api.delete(f"/crm/objects/2026-09/contacts/{created['id']}")
    await sandbox.wait_webhooks(10)
    events = sorted(live.receiver.events(), key=lambda e: e["subscriptionType"])
    assert [(e["subscriptionType"], e["subscriptionId"]) for e in events] == [
        ("contact.propertyChange", int(email["id"])),
        ("object.deletion", int(generic["id"])),
    ]
    assert events[1]["objectTypeId"] == "0-1"
