"""Forms and submissions in HubSpot's shapes; a submission converts its contact as the portal does (its
conversion properties change, with their webhooks)."""

from __future__ import annotations

import httpx

from cdc.sandbox.hubspot.scopes import ALL_SCOPES, required_scopes
from tests.sandbox.hubspot.conftest import Live

FORMS = "/marketing/v3/forms"
SUBMISSIONS = "/form-integrations/v1/submissions/forms"


async def add_form(api: httpx.AsyncClient, name: str) -> str:
    made = await api.post("/_admin/forms", json={"name": name, "fields": ["email", "company"]})
    assert made.status_code == 201
    form_id: str = made.json()["id"]
    return form_id


async def test_forms_are_listed_paged_and_read_in_hubspots_shape(client: httpx.AsyncClient) -> None:
    ids = [await add_form(client, f"Form {n}") for n in range(5)]
    first = (await client.get(FORMS, params={"limit": 3})).json()
    rest = (await client.get(FORMS, params={"limit": 3, "after": first["paging"]["next"]["after"]})).json()
    listed = [f["id"] for f in first["results"] + rest["results"]]
    assert sorted(listed) == sorted(ids)
    assert listed != ids, "no order is documented: the sandbox does not keep creation order"
    assert "paging" not in rest
    one = (await client.get(f"{FORMS}/{ids[0]}")).json()
    assert (one["name"], one["formType"], one["archived"]) == ("Form 0", "hubspot", False)
    assert (await client.get(f"{FORMS}/nope")).status_code == 404


async def test_submissions_come_newest_first_fifty_at_most_with_after(client: httpx.AsyncClient) -> None:
    form = await add_form(client, "Sign-Up Form")
    for n in range(53):
        await client.post(f"/_admin/forms/{form}/submit", json={"values": {"email": f"p{n}@x.io"}})
    page = (await client.get(f"{SUBMISSIONS}/{form}", params={"limit": 50})).json()
    rest = (
        await client.get(f"{SUBMISSIONS}/{form}", params={"after": page["paging"]["next"]["after"]})
    ).json()
    got = page["results"] + rest["results"]
    assert len(got) == 53
    assert [s["submittedAt"] for s in got] == sorted((s["submittedAt"] for s in got), reverse=True)
    assert set(got[0]) == {"conversionId", "submittedAt", "values", "pageUrl"}
    assert got[0]["values"] == [{"name": "email", "value": "p52@x.io"}]
    assert len((await client.get(f"{SUBMISSIONS}/{form}")).json()["results"]) == 20
    assert (await client.get(f"{SUBMISSIONS}/{form}", params={"limit": 51})).status_code == 400
    assert (await client.get(f"{SUBMISSIONS}/unknown")).status_code == 404


def test_forms_and_submissions_need_the_forms_scope() -> None:
    assert required_scopes("GET", f"{SUBMISSIONS}/f-1", {"formId": "f-1"}) == ("forms",)
    assert required_scopes("GET", FORMS, {}) == ("forms",)
    assert "forms" in ALL_SCOPES


async def test_a_submission_converts_its_contact_with_webhooks(live: Live) -> None:
    api = live.api
    contact = (await api.post("/_admin/objects/contacts", json={"properties": {"email": "ana@x.io"}})).json()
    form = await add_form(api, "Sign-Up Form")
    await live.sandbox.wait_webhooks()
    live.receiver.deliveries.clear()

    sent = (await api.post(f"/_admin/forms/{form}/submit", json={"values": {"email": "ANA@x.io"}})).json()
    assert sent["contactId"] == contact["id"]
    await live.sandbox.wait_webhooks()
    read = (await api.get(f"/_admin/objects/contacts/{contact['id']}")).json()["properties"]
    assert read["num_conversion_events"] == "1"
    assert read["recent_conversion_event_name"] == read["first_conversion_event_name"] == "Sign-Up Form"
    changed = {e.get("propertyName") for e in live.receiver.events()}
    assert "recent_conversion_date" in changed

    second = await add_form(api, "Contact us")
    await api.post(f"/_admin/forms/{second}/submit", json={"values": {"email": "ana@x.io"}})
    await api.post(f"/_admin/forms/{second}/submit", json={"values": {"email": "ana@x.io"}})
    read = (await api.get(f"/_admin/objects/contacts/{contact['id']}")).json()["properties"]
    assert (read["num_conversion_events"], read["num_unique_conversion_events"]) == ("3", "2")
    assert read["first_conversion_event_name"] == "Sign-Up Form"
    assert read["recent_conversion_event_name"] == "Contact us"


async def test_a_submission_by_a_new_email_creates_the_contact(client: httpx.AsyncClient) -> None:
    form = await add_form(client, "F")
    sent = (await client.post(f"/_admin/forms/{form}/submit", json={"values": {"email": "new@x.io"}})).json()
    read = (await client.get(f"/_admin/objects/contacts/{sent['contactId']}")).json()["properties"]
    assert (read["email"], read["num_conversion_events"]) == ("new@x.io", "1")
    bad = await client.post(f"/_admin/forms/{form}/submit", json={"values": {"name": "no email"}})
    assert bad.status_code == 400
