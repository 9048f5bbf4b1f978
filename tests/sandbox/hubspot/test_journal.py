"""The Webhooks Journal as the sandbox serves it (fact sheet hubspot_2026.md §5; spec
``PublicApiSpecs/Webhooks Journal/Webhooks Journal/Rollouts/284944/2026-03/webhooksJournal.json``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cdc.sandbox.hubspot import HubSpotSandbox

JOURNAL = "/webhooks-journal/journal-local/2026-03"
SUBSCRIPTIONS = "/webhooks-journal/subscriptions/2026-03"
CONTACTS = "/crm/objects/2026-03/contacts"
SCOPES = (
    "developer.webhooks_journal.read developer.webhooks_journal.subscriptions.read "
    "developer.webhooks_journal.subscriptions.write developer.webhooks_journal.snapshots.write"
)


@pytest.fixture
async def journal(client: httpx.AsyncClient, sandbox: HubSpotSandbox) -> httpx.AsyncClient:
    """A client whose bearer is a client-credentials token with the journal scopes; contacts subscribed."""
    j = await connect(client, sandbox)
    answer = await j.post(SUBSCRIPTIONS, json=contact_subscription(sandbox))
    assert answer.status_code == 200, answer.text
    return j


async def connect(client: httpx.AsyncClient, sandbox: HubSpotSandbox) -> httpx.AsyncClient:
    """A client with a new client-credentials token (they end, on the sandbox clock too)."""
    form = {"grant_type": "client_credentials", "client_id": sandbox.oauth.client_id,
            "client_secret": sandbox.client_secret, "scope": SCOPES}  # fmt: skip
    token = (await client.post("/oauth/2026-03/token", data=form)).json()["access_token"]
    return httpx.AsyncClient(
        transport=client._transport,
        base_url=str(client.base_url),
        headers={"Authorization": f"Bearer {token}"},
    )


def contact_subscription(sandbox: HubSpotSandbox, **changes: Any) -> dict[str, Any]:
    return {
        "subscriptionType": "OBJECT", "portalId": sandbox.portal_id, "objectTypeId": "0-1",
        "actions": ["CREATE", "UPDATE", "DELETE", "MERGE", "RESTORE"], "properties": ["email", "firstname"],
        "objectIds": [], **changes,
    }  # fmt: skip


def local(sandbox: HubSpotSandbox) -> dict[str, int]:
    return {"installPortalId": sandbox.portal_id}


async def entries_after(
    j: httpx.AsyncClient, sandbox: HubSpotSandbox, offset: str | None, count: int = 100
) -> list[dict[str, Any]]:
    """Every entry file after ``offset`` (from the earliest when None), fetched without the bearer."""
    path = f"{JOURNAL}/batch/earliest/{count}" if offset is None else f"{JOURNAL}/batch/{offset}/next/{count}"
    answer = await j.get(path, params=local(sandbox))
    if answer.status_code == 204:
        return []
    assert answer.status_code == 200, answer.text
    files = []
    async with httpx.AsyncClient(transport=j._transport) as bare:
        for result in answer.json()["results"]:
            files.append((await bare.get(result["url"])).json())
            assert files[-1]["offset"] == result["currentOffset"]
    return files


async def test_every_change_is_journaled_with_opaque_offsets_and_files_fetched_without_the_token(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    created = await client.post(CONTACTS, json={"properties": {"email": "a@x.test", "firstname": "Ann"}})
    contact_id = created.json()["id"]
    await client.patch(f"{CONTACTS}/{contact_id}", json={"properties": {"firstname": "Anna", "city": "Rome"}})
    await client.delete(f"{CONTACTS}/{contact_id}")
    files = await entries_after(journal, sandbox, None)
    events = [e for f in files for e in f["journalEvents"]]
    assert [(e["action"], e.get("propertyChanges")) for e in events] == [
        ("CREATE", None),
        ("UPDATE", {"email": "a@x.test", "firstname": "Ann"}),
        ("UPDATE", {"firstname": "Anna"}),  # city is not subscribed
        ("DELETE", None),
    ]
    assert {e["objectId"] for e in events} == {int(contact_id)}
    offsets = [f["offset"] for f in files]
    assert all(not o.isdigit() and len(o) == 36 for o in offsets)  # UUIDs: nothing to compute with
    assert await entries_after(journal, sandbox, offsets[-1]) == []
    assert [f["offset"] for f in await entries_after(journal, sandbox, offsets[0])] == offsets[1:]


async def test_a_file_url_refuses_the_bearer_token_and_ends(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    await client.post(CONTACTS, json={"properties": {"email": "b@x.test"}})
    url = (await journal.get(f"{JOURNAL}/earliest", params=local(sandbox))).json()["url"]
    with_token = await journal.get(url)
    assert with_token.status_code == 400
    assert "Authorization" in with_token.text
    sandbox.clock.advance(301)
    async with httpx.AsyncClient(transport=journal._transport) as bare:
        assert (await bare.get(url)).status_code == 403


async def test_an_offset_past_three_days_is_a_404_and_the_earliest_moves_on(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    await client.post(CONTACTS, json={"properties": {"email": "old@x.test"}})
    old = (await journal.get(f"{JOURNAL}/earliest", params=local(sandbox))).json()["currentOffset"]
    sandbox.clock.advance(3 * 24 * 3600 + 1)
    journal = await connect(client, sandbox)
    await client.post(CONTACTS, json={"properties": {"email": "new@x.test"}})
    expired = await journal.get(f"{JOURNAL}/offset/{old}/next", params=local(sandbox))
    assert expired.status_code == 404
    assert "expired" in expired.json()["message"]
    assert (await journal.get(f"{JOURNAL}/batch/{old}/next/10", params=local(sandbox))).status_code == 404
    files = await entries_after(journal, sandbox, None)
    assert [
        e["propertyChanges"]["email"] for f in files for e in f["journalEvents"] if "propertyChanges" in e
    ] == ["new@x.test"]


async def test_batch_counts_are_one_to_a_hundred(journal: httpx.AsyncClient, sandbox: HubSpotSandbox) -> None:
    for count in (0, 101):
        answer = await journal.get(f"{JOURNAL}/batch/earliest/{count}", params=local(sandbox))
        assert answer.status_code == 400, count
    assert (await journal.get(f"{JOURNAL}/batch/earliest/100", params=local(sandbox))).status_code == 204


async def test_the_static_token_is_refused_and_no_read_is_rate_limited(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    refused = await client.get(f"{JOURNAL}/earliest", params=local(sandbox))
    assert refused.status_code == 403
    assert refused.json()["category"] == "MISSING_SCOPES"
    for _ in range(150):  # past the ten-secondly burst of 100 (fact sheet §6): the journal is exempt
        assert (await journal.get(f"{JOURNAL}/latest", params=local(sandbox))).status_code == 204


async def test_subscriptions_upsert_and_filters_choose_what_is_journaled(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    again = await journal.post(SUBSCRIPTIONS, json=contact_subscription(sandbox, actions=["UPDATE"]))
    listed = (await journal.get(SUBSCRIPTIONS)).json()["results"]
    assert [s["id"] for s in listed] == [again.json()["id"]]  # one per portal and type: an upsert
    condition = {
        "filterType": "CRM_OBJECT_PROPERTY",
        "property": "firstname",
        "operator": "EQ",
        "value": "Yes",
    }
    made = await journal.post(
        f"{SUBSCRIPTIONS}/filters",
        json={"subscriptionId": again.json()["id"], "filter": {"conditions": [condition]}},
    )
    assert made.status_code == 200
    await client.post(CONTACTS, json={"properties": {"email": "no@x.test", "firstname": "No"}})
    await client.post(CONTACTS, json={"properties": {"email": "yes@x.test", "firstname": "Yes"}})
    events = [e for f in await entries_after(journal, sandbox, None) for e in f["journalEvents"]]
    assert [e["propertyChanges"]["email"] for e in events] == ["yes@x.test"]
    bad = await journal.post(SUBSCRIPTIONS, json=contact_subscription(sandbox, actions=["TELEPORT"]))
    assert bad.status_code == 400


async def test_the_delay_knob_holds_entries_back_and_appends_them_after_what_was_read(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    sandbox.faults.update({"journal_delay_ms": 5_000})
    await client.post(CONTACTS, json={"properties": {"email": "late@x.test"}})
    assert await entries_after(journal, sandbox, None) == []
    sandbox.clock.advance(5)
    assert len(await entries_after(journal, sandbox, None)) == 1


async def test_webhooks_dropped_at_100_percent_still_reach_the_journal(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    sandbox.faults.update({"webhook_drop_rate": 1.0})
    await client.post(CONTACTS, json={"properties": {"email": "kept@x.test"}})
    assert len(await entries_after(journal, sandbox, None)) == 1


async def test_a_snapshot_journals_the_records_current_values_and_reports_its_status(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    created = await client.post(CONTACTS, json={"properties": {"email": "snap@x.test", "firstname": "S"}})
    contact_id = int(created.json()["id"])
    requests = [
        {
            "portalId": sandbox.portal_id,
            "objectTypeId": "0-1",
            "objectId": contact_id,
            "properties": ["email"],
        },
        {"portalId": sandbox.portal_id, "objectTypeId": "0-1", "objectId": 1, "properties": ["email"]},
    ]
    answer = await journal.post(
        "/webhooks-journal/snapshots/2026-03/crm", json={"snapshotRequests": requests}
    )
    assert answer.status_code == 200, answer.text
    ok, missing = (r["snapshotStatusId"] for r in answer.json()["snapshotResponses"])
    status = f"{JOURNAL}/status"
    assert (await journal.get(f"{status}/{ok}")).json()["status"] == "SUCCESS"
    assert (await journal.get(f"{status}/{missing}")).json()["errorCode"] == "VALIDATION_ERROR"
    events = [e for f in await entries_after(journal, sandbox, None) for e in f["journalEvents"]]
    assert events[-1]["action"] == "SNAPSHOT"
    assert events[-1]["propertyChanges"] == {"email": "snap@x.test"}


def gdpr_subscription(sandbox: HubSpotSandbox, **changes: Any) -> dict[str, Any]:
    """Schema ``GdprPrivacyDeletionSubscriptionUpsertRequest``: actions, objectTypeId, portalId required."""
    return {"subscriptionType": "GDPR_PRIVACY_DELETION", "portalId": sandbox.portal_id, "objectTypeId": "0-1",
            "actions": ["GDPR_DELETE"], **changes}  # fmt: skip


async def test_a_privacy_deletion_is_journaled_for_a_gdpr_subscription_only(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    """The contact's OBJECT subscription journals the DELETE a privacy deletion brings (fact sheet hubspot.md:
    ``contact.privacyDeletion`` also triggers ``contact.deletion``), never GDPR_DELETE; the
    GDPR_PRIVACY_DELETION subscription journals GDPR_DELETE. The record is gone for good."""
    made = await journal.post(SUBSCRIPTIONS, json=gdpr_subscription(sandbox))
    assert made.status_code == 200, made.text
    listed = {s["subscriptionType"]: s for s in (await journal.get(SUBSCRIPTIONS)).json()["results"]}
    assert listed["GDPR_PRIVACY_DELETION"]["actions"] == ["GDPR_DELETE"]
    assert "properties" not in listed["GDPR_PRIVACY_DELETION"]
    again = await journal.post(SUBSCRIPTIONS, json=gdpr_subscription(sandbox))
    assert again.json()["id"] == made.json()["id"]  # an upsert
    created = await client.post(CONTACTS, json={"properties": {"email": "forget@x.test"}})
    contact_id = int(created.json()["id"])
    skip = len(await entries_after(journal, sandbox, None))

    gone = await client.post(f"{CONTACTS}/gdpr-delete", json={"objectId": str(contact_id)})
    assert gone.status_code == 204, gone.text
    events = [e for f in (await entries_after(journal, sandbox, None))[skip:] for e in f["journalEvents"]]
    assert sorted((e["action"], e["objectId"], e["objectTypeId"]) for e in events) == [
        ("DELETE", contact_id, "0-1"),
        ("GDPR_DELETE", contact_id, "0-1"),
    ]
    assert (await client.get(f"{CONTACTS}/{contact_id}", params={"archived": "true"})).status_code == 404


async def test_no_gdpr_subscription_journals_no_gdpr_delete_and_bad_subscriptions_are_refused(
    client: httpx.AsyncClient, journal: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    """An OBJECT subscription naming GDPR_DELETE still journals none (nothing says it would)."""
    everything = ["CREATE", "UPDATE", "DELETE", "GDPR_DELETE"]
    await journal.post(SUBSCRIPTIONS, json=contact_subscription(sandbox, actions=everything))
    created = await client.post(CONTACTS, json={"properties": {"email": "kept-quiet@x.test"}})
    skip = len(await entries_after(journal, sandbox, None))
    by_email = {"objectId": "kept-quiet@x.test", "idProperty": "email"}
    assert (await client.post(f"{CONTACTS}/gdpr-delete", json=by_email)).status_code == 204
    events = [e for f in (await entries_after(journal, sandbox, None))[skip:] for e in f["journalEvents"]]
    assert [(e["action"], str(e["objectId"])) for e in events] == [("DELETE", created.json()["id"])]

    no_actions = {k: v for k, v in gdpr_subscription(sandbox).items() if k != "actions"}
    unknown = gdpr_subscription(sandbox, subscriptionType="LIST_MEMBERSHIP")
    for body in (no_actions, unknown, gdpr_subscription(sandbox, actions=["FORGET"])):
        answer = await journal.post(SUBSCRIPTIONS, json=body)
        assert answer.status_code == 400, body
    assert "LIST_MEMBERSHIP" in (await journal.post(SUBSCRIPTIONS, json=unknown)).json()["message"]


async def test_gdpr_delete_takes_contacts_only_and_names_what_is_missing(client: httpx.AsyncClient) -> None:
    """Only contacts have the path (fact sheet hubspot.md); an email not found is blocklisted (204); an id not
    found, a 404; no objectId, a 400 saying so."""
    companies = await client.post("/crm/objects/2026-03/companies/gdpr-delete", json={"objectId": "1"})
    assert companies.status_code == 404
    unknown_email = {"objectId": "nobody@x.test", "idProperty": "email"}
    assert (await client.post(f"{CONTACTS}/gdpr-delete", json=unknown_email)).status_code == 204
    assert (await client.post(f"{CONTACTS}/gdpr-delete", json={"objectId": "1"})).status_code == 404
    missing = await client.post(f"{CONTACTS}/gdpr-delete", json={})
    assert missing.status_code == 400
    assert "objectId" in missing.json()["message"]
