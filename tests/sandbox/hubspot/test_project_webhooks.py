"""A project app's webhooks (the sandbox's default app): subscriptions deployed from its webhooks file, as
``hs project upload`` deploys them, and events in the generic ``object.*`` format (fact sheet
hubspot_2026.md §3), associations named by object type ids."""

from __future__ import annotations

from typing import Any

import httpx

from cdc.sandbox.hubspot import HubSpotSandbox
from tests.sandbox.hubspot.conftest import Live


async def settle(live: Live) -> list[dict[str, Any]]:
    await live.sandbox.wait_webhooks(10)
    events = live.receiver.events()
    live.receiver.deliveries.clear()
    return sorted(events, key=lambda e: (e["occurredAt"], e["subscriptionType"], e.get("propertyName", "")))


def webhooks_file(*entries: dict[str, Any], hub_events: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "uid": "webhooks",
        "type": "webhooks",
        "config": {"subscriptions": {"crmObjects": list(entries), "hubEvents": list(hub_events)}},
    }


async def test_without_subscriptions_every_change_comes_in_the_generic_format(live: Live) -> None:
    admin = live.api
    contact = (await admin.post("/_admin/objects/contacts", json={"properties": {"email": "g@x.io"}})).json()
    company = (await admin.post("/_admin/objects/companies", json={"properties": {"name": "Gen"}})).json()
    events = await settle(live)
    assert {e["subscriptionType"] for e in events} == {"object.creation", "object.propertyChange"}
    assert {e["objectTypeId"] for e in events} == {"0-1", "0-2"}

    association = {
        "fromType": "contacts",
        "fromId": contact["id"],
        "toType": "companies",
        "toId": company["id"],
    }
    await admin.post("/_admin/associations", json={**association, "primary": True})
    events = await settle(live)
    assert {e["subscriptionType"] for e in events} == {"object.associationChange"}
    contact_side = [e for e in events if e["fromObjectTypeId"] == "0-1"]
    assert sorted(e["associationTypeId"] for e in contact_side) == [1, 279]  # primary, unlabeled
    for event in contact_side:
        assert (event["fromObjectId"], event["toObjectTypeId"], event["toObjectId"]) == (
            int(contact["id"]), "0-2", int(company["id"]),
        )  # fmt: skip
        assert event["associationRemoved"] is False
        # The harsher reading: none of the legacy names beside the type ids (hubspot_2026.md §3).
        assert not {"associationType", "objectId", "objectTypeId", "isPrimaryAssociation"} & set(event)
    assert len([e for e in events if e["fromObjectTypeId"] == "0-2"]) == 2

    await admin.post("/_admin/associations/remove", json=association)
    events = await settle(live)
    assert {e["associationRemoved"] for e in events} == {True}


async def test_a_deployed_webhooks_file_decides_what_is_sent(live: Live) -> None:
    admin = live.api
    await admin.put("/_admin/webhooks", json={"require_subscriptions": True})
    deployed = await admin.put(
        "/_admin/project/webhooks",
        json=webhooks_file(
            {"subscriptionType": "object.propertyChange", "objectType": "contact", "propertyName": "email",
             "active": True},
            {"subscriptionType": "object.creation", "objectType": "company", "active": False},
            hub_events=({"subscriptionType": "contact.privacyDeletion", "active": True},),
        ),
    )  # fmt: skip
    assert deployed.status_code == 200, deployed.text
    made = deployed.json()["results"]
    assert [(s["eventType"], s.get("objectTypeId"), s["active"]) for s in made] == [
        ("object.propertyChange", "0-1", True),
        ("object.creation", "0-2", False),
        ("contact.privacyDeletion", None, True),
    ]
    await admin.post("/_admin/objects/contacts", json={"properties": {"email": "d@x.io", "firstname": "D"}})
    await admin.post("/_admin/objects/companies", json={"properties": {"name": "Paused"}})
    events = await settle(live)
    assert [(e["subscriptionType"], e["propertyName"], e["subscriptionId"]) for e in events] == [
        ("object.propertyChange", "email", int(made[0]["id"]))
    ]

    # An upload HubSpot would refuse changes nothing; the next one replaces every subscription.
    bad: dict[str, Any]
    for bad in (
        webhooks_file({"subscriptionType": "object.propertyChange", "objectType": "contact", "active": True}),
        webhooks_file({"subscriptionType": "object.creation", "objectType": "spaceship", "active": True}),
        webhooks_file({"subscriptionType": "contact.creation", "active": True}),  # legacy in crmObjects
        {"config": {}},
    ):
        assert (await admin.put("/_admin/project/webhooks", json=bad)).status_code == 400
    assert len(live.sandbox.subscriptions.items) == 3
    again = webhooks_file({"subscriptionType": "object.deletion", "objectType": "deal", "active": True})
    again["config"]["settings"] = {"targetUrl": live.hook_url, "maxConcurrentRequests": 12}
    assert (await admin.put("/_admin/project/webhooks", json=again)).status_code == 200
    assert [s.event_type for s in live.sandbox.subscriptions.items.values()] == ["object.deletion"]
    assert live.sandbox.subscriptions.max_concurrent == 12


async def test_a_legacy_app_has_no_project_to_deploy() -> None:
    sandbox = HubSpotSandbox(seed=3, app_kind="legacy")
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.hubapi.test") as api:
        answer = await api.put("/_admin/project/webhooks", json=webhooks_file())
        assert answer.status_code == 409
        info = (await api.get("/_admin/info")).json()
    assert (info["appKind"], info["developerApiKey"]) == ("legacy", sandbox.developer_api_key)
