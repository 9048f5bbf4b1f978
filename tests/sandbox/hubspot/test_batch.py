"""Batch endpoints, in every API version the sandbox serves: at most 100 inputs, duplicate ids -> 400,
per-input errors in a 207 (fact sheet §3.2), folded into the 200/201 in 2026-09 (its spec documents no 207,
the harsher reading: `cdc.sandbox.hubspot.versions`); results in no set order, written records without
their trace id."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cdc.sandbox.hubspot import HubSpotSandbox
from cdc.sandbox.hubspot.versions import SERVED, ApiVersion


@pytest.fixture(params=list(SERVED))
def version(request: pytest.FixtureRequest) -> ApiVersion:
    return SERVED[request.param]


@pytest.fixture
def client(client: httpx.AsyncClient, version: ApiVersion) -> httpx.AsyncClient:
    """The sandbox's client, its relative paths under the version's objects root."""
    client.base_url = client.base_url.join(f"{version.objects}/")
    return client


def partial(version: ApiVersion, ok: int = 200) -> int:
    """The status of a batch some input of which failed: 207, or ``ok`` (errors folded) in 2026-09."""
    return ok if version.name == "2026-09" else 207


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"contacts/batch/{path}", json=body)


async def seed(client: httpx.AsyncClient, n: int) -> list[str]:
    inputs = [{"properties": {"email": f"p{i}@example.com", "firstname": f"P{i}"}} for i in range(n)]
    response = await post(client, "create", {"inputs": inputs})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert {"startedAt", "completedAt", "results"} <= set(body)
    assert "errors" not in body
    by_email = {r["properties"]["email"]: r["id"] for r in body["results"]}  # results come in any order
    return [by_email[f"p{i}@example.com"] for i in range(n)]


async def test_batch_read_by_id_and_by_email_with_errors_for_missing(
    client: httpx.AsyncClient, version: ApiVersion
) -> None:
    ids = await seed(client, 3)
    ok = await post(client, "read", {"properties": ["email"], "inputs": [{"id": i} for i in ids]})
    assert ok.status_code == 200
    emails = {r["id"]: r["properties"]["email"] for r in ok.json()["results"]}
    assert emails == {i: f"p{n}@example.com" for n, i in enumerate(ids)}

    mixed = await post(
        client,
        "read",
        {
            "idProperty": "email",
            "properties": ["firstname"],
            "inputs": [{"id": "p1@example.com"}, {"id": "none@example.com"}],
        },
    )
    assert mixed.status_code == partial(version)
    body = mixed.json()
    assert [r["id"] for r in body["results"]] == [ids[1]]
    assert body["numErrors"] == 1
    assert body["errors"] == [
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "context": {"ids": ["none@example.com"]},
        }
    ]


async def test_duplicate_ids_and_oversized_batches_are_400(client: httpx.AsyncClient) -> None:
    ids = await seed(client, 1)
    dup = await post(client, "read", {"inputs": [{"id": ids[0]}, {"id": ids[0]}]})
    assert dup.status_code == 400
    body = dup.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"] == f"Duplicate IDs found in batch input: [{ids[0]}]. IDs must be unique"
    assert body["context"] == {"ids": [ids[0]]}
    too_many = await post(client, "create", {"inputs": [{"properties": {}} for _ in range(101)]})
    assert too_many.status_code == 400
    assert [r["id"] for r in (await client.get("contacts")).json()["results"]] == ids


async def test_batch_create_without_trace_ids_fails_as_a_whole(client: httpx.AsyncClient) -> None:
    inputs = [{"properties": {"email": "ok@example.com"}}, {"properties": {"bogus": "x"}}]
    response = await post(client, "create", {"inputs": inputs})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert (await client.get("contacts")).json()["results"] == []


async def test_batch_create_with_trace_ids_answers_per_input(
    client: httpx.AsyncClient, version: ApiVersion
) -> None:
    await seed(client, 1)  # p0@example.com exists
    inputs = [
        {"properties": {"email": "new@example.com"}, "objectWriteTraceId": "t-ok"},
        {"properties": {"bogus": "x"}, "objectWriteTraceId": "t-bad"},
        {"properties": {"email": "p0@example.com"}, "objectWriteTraceId": "t-dup"},
    ]
    response = await post(client, "create", {"inputs": inputs})
    assert response.status_code == partial(version, 201)
    body = response.json()
    # As in HubSpot's documented 207: the written record does not echo its trace id, the errors do.
    assert [r["properties"]["email"] for r in body["results"]] == ["new@example.com"]
    assert "objectWriteTraceId" not in body["results"][0]
    assert body["numErrors"] == 2
    by_trace = {e["context"]["objectWriteTraceId"][0]: e for e in body["errors"]}
    assert by_trace["t-bad"]["category"] == "VALIDATION_ERROR"
    assert by_trace["t-bad"]["status"] == "error"
    assert by_trace["t-dup"]["category"] == "CONFLICT"


async def test_batch_update_with_unknown_ids_answers_them_as_errors(
    client: httpx.AsyncClient, version: ApiVersion
) -> None:
    ids = await seed(client, 2)
    inputs = [
        {"id": ids[0], "properties": {"firstname": "X"}},
        {"id": "123", "properties": {"firstname": "Y"}},
    ]
    response = await post(client, "update", {"inputs": inputs})
    assert response.status_code == partial(version)
    body = response.json()
    assert [(r["id"], r["properties"]["firstname"]) for r in body["results"]] == [(ids[0], "X")]
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"] == {"ids": ["123"]}
    bad = await post(client, "update", {"inputs": [{"id": ids[1], "properties": {"nope": "1"}}]})
    assert bad.status_code == 400


async def test_batch_upsert_by_email_reports_new(client: httpx.AsyncClient) -> None:
    ids = await seed(client, 1)
    inputs = [
        {"id": "p0@example.com", "idProperty": "email", "properties": {"firstname": "Updated"}},
        {"id": "fresh@example.com", "idProperty": "email", "properties": {"firstname": "Fresh"}},
    ]
    response = await post(client, "upsert", {"inputs": inputs})
    assert response.status_code == 200
    results = {r["properties"]["email"]: r for r in response.json()["results"]}
    assert results["p0@example.com"]["new"] is False
    assert results["p0@example.com"]["id"] == ids[0]
    assert results["p0@example.com"]["properties"]["firstname"] == "Updated"
    assert results["fresh@example.com"]["new"] is True
    not_unique = await post(
        client, "upsert", {"inputs": [{"id": "x", "idProperty": "firstname", "properties": {}}]}
    )
    assert not_unique.status_code == 400


async def test_batch_archive(client: httpx.AsyncClient) -> None:
    ids = await seed(client, 2)
    assert (await post(client, "archive", {"inputs": [{"id": ids[0]}]})).status_code == 204
    remaining = (await client.get("contacts")).json()["results"]
    assert [r["id"] for r in remaining] == ids[1:]


@pytest.mark.parametrize("kind", ["companies", "deals"])
async def test_other_objects_batch_too(client: httpx.AsyncClient, kind: str) -> None:
    name = "name" if kind == "companies" else "dealname"
    response = await client.post(
        f"{kind}/batch/create",
        json={"inputs": [{"properties": {name: "A"}}, {"properties": {name: "B"}}]},
    )
    assert response.status_code == 201
    assert sorted(r["properties"][name] for r in response.json()["results"]) == ["A", "B"]


async def test_batch_results_come_in_no_set_order(client: httpx.AsyncClient) -> None:
    """HubSpot answers batches in any order (hubspot-api-nodejs issue 190): the sandbox shuffles (seeded),
    so a caller matching results by position is caught."""
    sent = [f"o{i}@example.com" for i in range(30)]
    inputs = [{"properties": {"email": e}, "objectWriteTraceId": str(i)} for i, e in enumerate(sent)]
    created = (await post(client, "create", {"inputs": inputs})).json()["results"]
    emails = [r["properties"]["email"] for r in created]
    assert sorted(emails) == sorted(sent)
    assert emails != sent
    assert all("objectWriteTraceId" not in r for r in created)
    ids = [r["id"] for r in created]
    read = (await post(client, "read", {"inputs": [{"id": i} for i in ids]})).json()["results"]
    assert sorted(r["id"] for r in read) == sorted(ids)
    assert [r["id"] for r in read] != ids
    updated = (
        await post(client, "update", {"inputs": [{"id": i, "properties": {"firstname": "X"}} for i in ids]})
    ).json()["results"]
    assert [r["id"] for r in updated] != ids


async def test_a_batch_read_with_history_takes_fewer_inputs_and_names_the_writer(
    client: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    """History "will reduce the maximum number of objects that can be read by a single request" (the
    objects spec, 2026-09; no number given): the sandbox takes 50. Writes made with the app's token are
    ``INTEGRATION`` with the app id (fact sheet reference/hubspot.md §6)."""
    ids = await seed(client, 51)
    body = {"properties": ["firstname"], "propertiesWithHistory": ["firstname"]}
    too_many = await post(client, "read", {**body, "inputs": [{"id": i} for i in ids]})
    assert too_many.status_code == 400
    assert "at most 50" in too_many.json()["message"]
    read = await post(client, "read", {**body, "inputs": [{"id": i} for i in ids[:50]]})
    assert read.status_code == 200
    [entry] = next(r for r in read.json()["results"] if r["id"] == ids[0])["propertiesWithHistory"][
        "firstname"
    ]
    assert (entry["value"], entry["sourceType"], entry["sourceId"]) == (
        "P0",
        "INTEGRATION",
        str(sandbox.app_id),
    )
    plain = await post(client, "read", {"properties": ["firstname"], "inputs": [{"id": i} for i in ids]})
    assert plain.status_code == 200
