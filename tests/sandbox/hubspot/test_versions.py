"""The API versions the sandbox serves side by side (`cdc.sandbox.hubspot.versions`): every endpoint the
daemon calls in every version, a version it does not serve answered as HubSpot answers a path it does not
route, the properties API's differences, and the validation rules 2026-09 enforces
(hs:changelog/crm-api-write-validation-enforcement; fact sheet hubspot_2026.md §4)."""

from __future__ import annotations

import dataclasses
import string
from typing import Any

import httpx
import pytest

from cdc.hubspot.paths import API_VERSIONS, Endpoint, endpoints
from cdc.sandbox.hubspot import HubSpotSandbox
from cdc.sandbox.hubspot.objects import OBJECT_TYPES
from cdc.sandbox.hubspot.versions import SERVED
from cdc.sandbox.middleware import endpoint_of

NAMES = {
    "type": "contacts", "from": "contacts", "to": "companies", "id": "1", "name": "email", "appId": "1",
    "formId": "f", "count": "100", "offset": "8d1c0f5e-0000-4000-8000-000000000001", "subscriptionId": "1",
    "filterId": "1",
}  # fmt: skip
ORDERED = [{"label": "A", "value": "a", "displayOrder": 0, "hidden": False}]


def served_route(sandbox: HubSpotSandbox, endpoint: Endpoint) -> str:
    fields = [f for _, f, _, _ in string.Formatter().parse(endpoint.route) if f is not None]
    scope = {"type": "http", "method": endpoint.method, "path": endpoint.path(*(NAMES[f] for f in fields))}
    return endpoint_of(sandbox.app.router, scope)


@pytest.mark.parametrize("version", API_VERSIONS)
def test_every_endpoint_the_daemon_calls_is_served_in_its_version(
    sandbox: HubSpotSandbox, version: str
) -> None:
    """The daemon's paths (`cdc.hubspot.paths`) and the sandbox's routes are written apart; they agree."""
    assert set(API_VERSIONS) == set(SERVED)
    api = endpoints(version)  # type: ignore[arg-type]
    for field in dataclasses.fields(api):
        if field.name == "version":
            continue
        endpoint: Endpoint = getattr(api, field.name)
        route = served_route(sandbox, endpoint)
        assert "{rest:path}" not in route, f"{version} {field.name}: {endpoint.label} is not served"
        assert "(unmatched)" not in route


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/crm/objects/2025-09/contacts"),
        ("POST", "/crm/objects/2025-09/contacts/batch/create"),
        ("POST", "/crm/associations/2027-03/contacts/companies/batch/read"),
        ("GET", "/crm/properties/2025-09/contacts"),
        ("GET", "/crm/owners/2025-09"),
        ("GET", "/crm/v5/objects/contacts"),
        ("GET", "/app-webhooks/2025-09/1/subscriptions"),
    ],
)
async def test_a_version_not_served_is_a_404_page_and_changes_nothing(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox, method: str, path: str
) -> None:
    """HubSpot answers a path it does not route with a 404 HTML page, not its JSON error
    (hubspot-api-nodejs issue 413, hubspot-ruby issue 21); for an unknown date version: unverified."""
    body = {"inputs": [{"properties": {"email": "x@example.com"}}]} if method == "POST" else None
    answer = await client.request(method, path, json=body)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "Page not found" in answer.text
    assert sandbox.store.all(OBJECT_TYPES["contacts"]) == []


@pytest.mark.parametrize(("version", "accepted"), [("legacy", True), ("2026-03", False), ("2026-09", False)])
async def test_option_display_order_is_required_from_2026_03(
    client: httpx.AsyncClient, version: str, accepted: bool
) -> None:
    spec: dict[str, Any] = {"name": "cdc_kind", "label": "Kind", "type": "enumeration", "fieldType": "select"}
    spec |= {"groupName": "contactinformation", "options": [{"label": "A", "value": "a", "hidden": False}]}
    answer = await client.post(f"{SERVED[version].properties}/contacts", json=spec)
    assert answer.status_code == (201 if accepted else 400), answer.text
    if not accepted:
        assert "displayOrder" in answer.json()["message"]
        ordered = await client.post(
            f"{SERVED[version].properties}/contacts", json={**spec, "options": ORDERED}
        )
        assert ordered.status_code == 201


@pytest.mark.parametrize(
    "field", ["numberDisplayHint", "textDisplayHint", "currencyPropertyName", "showCurrencySymbol"]
)
async def test_2026_09_refuses_the_property_fields_its_spec_dropped(
    client: httpx.AsyncClient, field: str
) -> None:
    spec: dict[str, Any] = {"name": "cdc_amount", "label": "Amount", "type": "number", "fieldType": "number"}
    spec |= {"groupName": "dealinformation", field: "formatted" if "Hint" in field else "x"}
    refused = await client.post("/crm/properties/2026-09/deals", json=spec)
    assert refused.status_code == 400
    assert field in refused.json()["message"]
    assert (await client.post("/crm/properties/2026-03/deals", json=spec)).status_code == 201
    read = (await client.get("/crm/properties/2026-09/deals/cdc_amount")).json()
    assert field not in read


# -- validation rules -------------------------------------------------------------------------------


async def rule(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await client.post("/_admin/validation-rules", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def test_a_required_property_refuses_2026_09_creates_without_it(client: httpx.AsyncClient) -> None:
    made = await rule(
        client, objectType="contacts", propertyName="jobtitle", message="Job title is required."
    )
    assert made == {
        "id": 1,
        "objectType": "contacts",
        "propertyName": "jobtitle",
        "message": "Job title is required.",
    }
    refused = await client.post(
        "/crm/objects/2026-09/contacts", json={"properties": {"email": "a@example.com"}}
    )
    assert refused.status_code == 400
    body = refused.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"] == "Job title is required."
    assert body["errors"] == [
        {
            "message": "Job title is required.",
            "code": "MISSING_REQUIRED_PROPERTY",
            "context": {"propertyName": ["jobtitle"]},
        }
    ]
    ok = await client.post(
        "/crm/objects/2026-09/contacts", json={"properties": {"email": "a@example.com", "jobtitle": "CTO"}}
    )
    assert ok.status_code == 201
    # Updates do not re-check a create-form rule; earlier versions ignore the rules (the changelog).
    cleared = await client.patch(
        f"/crm/objects/2026-09/contacts/{ok.json()['id']}", json={"properties": {"jobtitle": ""}}
    )
    assert cleared.status_code == 200
    for version in ("legacy", "2026-03"):
        old = await client.post(
            f"{SERVED[version].objects}/contacts", json={"properties": {"email": f"{version}@x.io"}}
        )
        assert old.status_code == 201


async def test_a_2026_09_batch_with_one_refused_input_is_refused_whole(client: httpx.AsyncClient) -> None:
    """The changelog documents a 400 only: the harsher reading, even with a trace id on every input."""
    await rule(client, objectType="contacts", propertyName="jobtitle")
    inputs = [
        {"properties": {"email": "a@example.com", "jobtitle": "CTO"}, "objectWriteTraceId": "0"},
        {"properties": {"email": "b@example.com"}, "objectWriteTraceId": "1"},
    ]
    refused = await client.post("/crm/objects/2026-09/contacts/batch/create", json={"inputs": inputs})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["message"] == "Job Title is required to create a contact"
    assert (await client.get("/crm/objects/2026-09/contacts")).json()["results"] == []
    upsert = [{"id": "c@example.com", "idProperty": "email", "properties": {}, "objectWriteTraceId": "0"}]
    assert (
        await client.post("/crm/objects/2026-09/contacts/batch/upsert", json={"inputs": upsert})
    ).status_code == 400
    alone = await client.post("/crm/objects/2026-09/contacts/batch/create", json={"inputs": inputs[:1]})
    assert alone.status_code == 201


async def test_a_conditional_rule_binds_creates_and_updates_that_meet_its_condition(
    client: httpx.AsyncClient,
) -> None:
    await rule(
        client,
        objectType="deals",
        propertyName="closedate",
        when={"propertyName": "dealstage", "value": "closedwon"},
        message="A won deal needs its close date.",
    )
    base = "/crm/objects/2026-09/deals"
    deal = (
        await client.post(base, json={"properties": {"dealname": "D", "dealstage": "appointmentscheduled"}})
    ).json()
    won = await client.patch(f"{base}/{deal['id']}", json={"properties": {"dealstage": "closedwon"}})
    assert won.status_code == 400
    assert won.json()["errors"][0]["code"] == "MISSING_CONDITIONAL_REQUIRED_PROPERTY"
    assert won.json()["errors"][0]["context"] == {"propertyName": ["closedate"]}
    batch = [{"id": deal["id"], "properties": {"dealstage": "closedwon"}, "objectWriteTraceId": "0"}]
    assert (await client.post(f"{base}/batch/update", json={"inputs": batch})).status_code == 400
    dated = {"dealstage": "closedwon", "closedate": "2026-10-01T00:00:00Z"}
    assert (await client.patch(f"{base}/{deal['id']}", json={"properties": dated})).status_code == 200
    # The record holds the date now: a later write that leaves it alone passes.
    assert (
        await client.patch(f"{base}/{deal['id']}", json={"properties": {"dealname": "E"}})
    ).status_code == 200
    cleared = await client.patch(f"{base}/{deal['id']}", json={"properties": {"closedate": ""}})
    assert cleared.status_code == 400


async def test_rules_are_listed_and_cleared_and_bad_ones_refused(client: httpx.AsyncClient) -> None:
    await rule(client, objectType="contact", propertyName="jobtitle")
    assert [r["propertyName"] for r in (await client.get("/_admin/validation-rules")).json()["results"]] == [
        "jobtitle"
    ]
    unknown = await client.post(
        "/_admin/validation-rules", json={"objectType": "contacts", "propertyName": "nope"}
    )
    assert unknown.status_code == 400
    assert "nope" in unknown.json()["message"]
    bad_when = {"objectType": "deals", "propertyName": "closedate", "when": {"propertyName": "dealstage"}}
    assert (await client.post("/_admin/validation-rules", json=bad_when)).status_code == 400
    assert (await client.post("/_admin/validation-rules", json={"objectType": "tickets"})).status_code == 400
    assert (await client.delete("/_admin/validation-rules")).status_code == 204
    assert (await client.get("/_admin/validation-rules")).json()["results"] == []
    assert (
        await client.post("/crm/objects/2026-09/contacts", json={"properties": {"email": "z@example.com"}})
    ).status_code == 201
