"""Webhooks over real sockets: events per change (fact sheet §1.2), signatures, retries, batching, knobs.

Here the app is a legacy one, whose events carry the per-object types (``contact.creation``) these tests
name; a project app's generic ones are in ``test_project_webhooks.py``."""

from __future__ import annotations

from typing import Any

import pytest

from cdc.hubspot.signatures import is_valid
from cdc.sandbox.hubspot import HubSpotSandbox
from tests.sandbox.hubspot.conftest import Delivery, Live


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(seed=7, app_kind="legacy")


EVENT_FIELDS = {
    "eventId",
    "subscriptionId",
    "portalId",
    "appId",
    "occurredAt",
    "subscriptionType",
    "attemptNumber",
    "objectId",
    "changeSource",
    "sourceId",
}


async def settle(live: Live) -> list[dict[str, Any]]:
    await live.sandbox.wait_webhooks(10)
    return sorted(
        live.receiver.events(),
        key=lambda e: (e["occurredAt"], e["subscriptionType"], e.get("propertyName", "")),
    )


def verify(delivery: Delivery, secret: str) -> None:
    headers = delivery.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-hubspot-signature-version"] == "v1"
    assert is_valid(headers["x-hubspot-signature"], secret, delivery.body)
    assert is_valid(
        headers["x-hubspot-signature-v3"],
        secret,
        delivery.body,
        http_uri=delivery.url,
        http_method="POST",
        signature_version="v3",
        timestamp=headers["x-hubspot-request-timestamp"],
    )
    assert not is_valid(
        headers["x-hubspot-signature-v3"],
        "wrong-secret",
        delivery.body,
        http_uri=delivery.url,
        signature_version="v3",
        timestamp=headers["x-hubspot-request-timestamp"],
    )


async def test_api_writes_come_back_as_signed_integration_events(live: Live) -> None:
    sandbox = live.sandbox
    created = (
        await live.api.post(
            "/crm/objects/2026-09/contacts", json={"properties": {"email": "w@example.com", "firstname": "W"}}
        )
    ).json()
    events = await settle(live)
    assert [e["subscriptionType"] for e in events] == [
        "contact.creation",
        "contact.propertyChange",
        "contact.propertyChange",
    ]
    creation = events[0]
    assert set(creation) >= EVENT_FIELDS
    assert creation["objectId"] == int(created["id"])
    assert creation["portalId"] == sandbox.portal_id
    assert creation["appId"] == sandbox.app_id
    assert creation["changeSource"] == "INTEGRATION"
    assert creation["sourceId"] == str(sandbox.app_id)
    assert creation["attemptNumber"] == 0
    assert creation["changeFlag"] == "CREATED"
    assert {(e["propertyName"], e["propertyValue"]) for e in events[1:]} == {
        ("email", "w@example.com"),
        ("firstname", "W"),
    }
    for delivery in live.receiver.deliveries:
        verify(delivery, sandbox.client_secret)

    live.receiver.deliveries.clear()
    await live.api.patch(
        f"/crm/objects/2026-09/contacts/{created['id']}",
        json={"properties": {"firstname": "W", "lastname": "New"}},
    )
    await live.api.delete(f"/crm/objects/2026-09/contacts/{created['id']}")
    events = await settle(live)
    assert [(e["subscriptionType"], e.get("propertyName")) for e in events] == [
        ("contact.propertyChange", "lastname"),  # an unchanged value sends nothing
        ("contact.deletion", None),
    ]
    assert events[1]["changeFlag"] == "DELETED"


async def test_admin_edits_are_crm_ui_with_a_user_and_cover_every_change_type(live: Live) -> None:
    admin = live.api
    one = (
        await admin.post("/_admin/objects/contacts", json={"properties": {"email": "a@x.io"}, "userId": 77})
    ).json()
    two = (await admin.post("/_admin/objects/contacts", json={"properties": {"email": "b@x.io"}})).json()
    company = (await admin.post("/_admin/objects/companies", json={"properties": {"name": "Acme"}})).json()
    await settle(live)
    live.receiver.deliveries.clear()

    await admin.post(
        "/_admin/associations",
        json={
            "fromType": "contacts",
            "fromId": one["id"],
            "toType": "companies",
            "toId": company["id"],
            "primary": True,
            "userId": 77,
        },
    )
    events = await settle(live)
    assert all(e["changeSource"] == "CRM_UI" and e["sourceId"] == "userId:77" for e in events)
    contact_side = [e for e in events if e["subscriptionType"] == "contact.associationChange"]
    assert sorted((e["associationType"], e["isPrimaryAssociation"]) for e in contact_side) == [
        ("CONTACT_TO_COMPANY", False),
        ("CONTACT_TO_COMPANY", True),
    ]
    assert {(e["fromObjectId"], e["toObjectId"], e["associationRemoved"]) for e in contact_side} == {
        (int(one["id"]), int(company["id"]), False)
    }
    assert len([e for e in events if e["subscriptionType"] == "company.associationChange"]) == 2

    live.receiver.deliveries.clear()
    merged = (
        await admin.post(
            "/_admin/objects/contacts/merge",
            json={"primaryObjectId": one["id"], "objectIdToMerge": two["id"]},
        )
    ).json()
    (merge,) = await settle(live)
    assert merge["subscriptionType"] == "contact.merge"
    assert merge["primaryObjectId"] == int(one["id"])
    assert merge["mergedObjectIds"] == [int(two["id"])]
    assert merge["newObjectId"] == int(merged["id"])
    assert isinstance(merge["numberOfPropertiesMoved"], int)

    live.receiver.deliveries.clear()
    assert (await admin.delete(f"/_admin/objects/companies/{company['id']}?userId=5")).status_code == 204
    assert (
        await admin.post(f"/_admin/objects/companies/{company['id']}/restore?userId=5")
    ).status_code == 200
    events = await settle(live)
    assert [e["subscriptionType"] for e in events] == ["company.deletion", "company.restore"]
    assert events[1]["sourceId"] == "userId:5"


async def test_seeding_sends_no_webhooks(live: Live) -> None:
    seeded = await live.api.post(
        "/_admin/seed",
        json={"contacts": [{"email": f"s{n}@x.io"} for n in range(3)], "deals": [{"dealname": "D"}]},
    )
    assert seeded.status_code == 201
    assert len(seeded.json()["contacts"]) == 3
    await settle(live)
    assert live.receiver.deliveries == []


async def test_non_2xx_is_retried_with_a_higher_attempt_number_and_fresh_signature(live: Live) -> None:
    live.receiver.statuses = [500, 404]
    await live.api.put("/_admin/webhooks", json={"retry_base_seconds": 0.01})
    await live.api.post("/_admin/objects/deals", json={"properties": {}})
    await settle(live)
    attempts = live.receiver.deliveries
    assert [d.events[0]["attemptNumber"] for d in attempts] == [0, 1, 2]
    assert len({d.events[0]["eventId"] for d in attempts}) == 1
    for delivery in attempts:
        verify(delivery, live.sandbox.client_secret)
    log = (await live.api.get("/_admin/webhooks/deliveries")).json()["results"]
    assert [(e["attempt"], e["status"]) for e in log] == [(0, 500), (1, 404), (2, 200)]


async def test_a_timeout_is_retried(live: Live) -> None:
    live.receiver.slow_requests, live.receiver.delay_s = 1, 1.0
    await live.api.put("/_admin/webhooks", json={"retry_base_seconds": 0.01, "timeout_seconds": 0.2})
    await live.api.post("/_admin/objects/deals", json={"properties": {}})
    await settle(live)
    log = (await live.api.get("/_admin/webhooks/deliveries")).json()["results"]
    assert [(e["attempt"], e["status"], e["error"]) for e in log] == [(0, None, "timeout"), (1, 200, None)]


async def test_gives_up_after_ten_retries(live: Live) -> None:
    live.receiver.statuses = [503] * 20
    await live.api.put("/_admin/webhooks", json={"retry_base_seconds": 0.001})
    await live.api.post("/_admin/objects/deals", json={"properties": {}})
    await settle(live)
    assert len(live.receiver.deliveries) == 11
    log = (await live.api.get("/_admin/webhooks/deliveries")).json()["results"]
    assert log[-1]["attempt"] == 10
    assert log[-1]["gaveUp"] is True


async def test_batches_hold_at_most_100_events(live: Live) -> None:
    inputs = [{"properties": {"email": f"b{n}@x.io"}} for n in range(100)]
    assert (
        await live.api.post("/crm/objects/2026-09/contacts/batch/create", json={"inputs": inputs})
    ).status_code == 201
    events = await settle(live)
    assert len(events) == 200
    assert max(len(d.events) for d in live.receiver.deliveries) <= 100
    assert len(live.receiver.deliveries) >= 2


async def test_duplicate_drop_and_reorder_knobs(live: Live) -> None:
    api = live.api
    await api.put("/_admin/faults", json={"webhook_duplicate_rate": 1.0})
    await api.post("/_admin/objects/deals", json={"properties": {}})
    events = await settle(live)
    assert len(events) == 2
    assert events[0] == events[1]

    live.receiver.deliveries.clear()
    await api.put("/_admin/faults", json={"webhook_duplicate_rate": 0.0, "webhook_drop_rate": 1.0})
    await api.post("/_admin/objects/deals", json={"properties": {}})
    assert await settle(live) == []
    assert (await api.get("/_admin/webhooks")).json()["dropped"] == 1

    await api.put("/_admin/faults", json={"webhook_drop_rate": 0.0, "webhook_reorder": True})
    inputs = [{"properties": {"dealname": f"d{n}"}} for n in range(30)]
    await api.post("/crm/objects/2026-09/deals/batch/create", json={"inputs": inputs})
    await settle(live)
    sent = [
        e["objectId"]
        for d in live.receiver.deliveries
        for e in d.events
        if e["subscriptionType"] == "deal.creation"
    ]
    assert sorted(sent) == sorted(set(sent))
    assert len(sent) == 30
    assert sent != sorted(sent)


async def test_no_target_url_means_nothing_is_sent(live: Live) -> None:
    live.sandbox.set_webhook_url(None)
    await live.api.post("/_admin/objects/deals", json={"properties": {}})
    assert await settle(live) == []


async def test_a_privacy_deletion_sends_privacy_deletion_and_deletion(live: Live) -> None:
    """``contact.privacyDeletion`` also triggers ``contact.deletion`` (fact sheet hubspot.md, D-WH); the
    record is gone for good, archived reads included ("GDPR delete is permanent")."""
    contacts = "/crm/objects/2026-09/contacts"
    created = (await live.api.post(contacts, json={"properties": {"email": "gdpr@example.com"}})).json()
    await settle(live)
    live.receiver.deliveries.clear()
    gone = await live.api.post(f"{contacts}/gdpr-delete", json={"objectId": created["id"]})
    assert gone.status_code == 204, gone.text
    events = await settle(live)
    assert sorted((e["subscriptionType"], e["objectId"]) for e in events) == [
        ("contact.deletion", int(created["id"])),
        ("contact.privacyDeletion", int(created["id"])),
    ]
    archived = await live.api.get(f"{contacts}/{created['id']}", params={"archived": "true"})
    assert archived.status_code == 404
