"""Change tracking (fact sheet §1): initial read, delta links, paging, $deletedEntity, expiry."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc.sandbox.dataverse import DataverseSandbox
from tests.sandbox.dataverse.support import API, ORG, create, enable_change_tracking


@pytest.fixture
async def client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The tables these tests read are change-tracked, as `cdc provision --dataverse` leaves them."""
    await enable_change_tracking(client, "account", "contact", "lead")
    return client


TRACK = {"Prefer": "odata.track-changes"}


async def read_all(
    client: httpx.AsyncClient, url: str, page_size: int | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Follow nextLinks to the deltaLink; returns every item and the deltaLink."""
    items: list[dict[str, Any]] = []
    prefer = "odata.track-changes" if "$deltatoken" not in url else ""
    if page_size:
        prefer = f"{prefer},odata.maxpagesize={page_size}".lstrip(",")
    while True:
        response = await client.get(url.removeprefix(ORG), headers={"Prefer": prefer} if prefer else {})
        assert response.status_code == 200, response.text
        body = response.json()
        assert not ("@odata.nextLink" in body and "@odata.deltaLink" in body)
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        if page_size:
            assert len(body["value"]) == page_size
        url = body["@odata.nextLink"]


async def test_initial_read_returns_everything_and_a_delta_link(client: httpx.AsyncClient) -> None:
    ids = [await create(client, "accounts", {"name": f"A{i}", "telephone1": "1"}) for i in range(3)]
    response = await client.get("/api/data/v9.2/accounts?$select=name", headers=TRACK)
    assert response.headers["Preference-Applied"] == "odata.track-changes"
    body = response.json()
    assert body["@odata.context"].startswith(f"{API}/$metadata#accounts")
    assert "$deltatoken=" in body["@odata.deltaLink"]
    assert "$select=name" in body["@odata.deltaLink"]
    assert [row["accountid"] for row in body["value"]] == ids
    assert set(body["value"][0]) == {"@odata.etag", "name", "accountid"}


async def test_delta_shapes_rows_then_deleted_entities(client: httpx.AsyncClient) -> None:
    keep = await create(client, "accounts", {"name": "keep"})
    gone = await create(client, "accounts", {"name": "gone"})
    _, delta = await read_all(client, f"{API}/accounts?$select=name")
    fresh = await create(client, "accounts", {"name": "fresh"})
    await client.patch(f"/api/data/v9.2/accounts({keep})", json={"name": "keep 2"})
    await client.patch(f"/api/data/v9.2/accounts({fresh})", json={"name": "fresh 2"})
    await client.delete(f"/api/data/v9.2/accounts({gone})")
    body = (await client.get(delta.removeprefix(ORG))).json()
    assert body["@odata.context"].endswith("/$delta")
    assert body["value"][0]["accountid"] == keep
    assert body["value"][0]["name"] == "keep 2"
    assert body["value"][1]["accountid"] == fresh
    assert body["value"][1]["name"] == "fresh 2"
    assert body["value"][2] == {
        "@odata.context": f"{API}/$metadata#accounts/$deletedEntity",
        "id": gone,
        "reason": "deleted",
    }
    assert len(body["value"]) == 3
    empty = (await client.get(body["@odata.deltaLink"].removeprefix(ORG))).json()
    assert empty["value"] == []
    assert "$deltatoken=" in empty["@odata.deltaLink"]


async def test_created_then_deleted_between_polls_shows_as_delete(client: httpx.AsyncClient) -> None:
    _, delta = await read_all(client, f"{API}/contacts")
    ghost = await create(client, "contacts", {"lastname": "ghost"})
    await client.delete(f"/api/data/v9.2/contacts({ghost})")
    items, _ = await read_all(client, delta)
    assert items == [
        {"@odata.context": f"{API}/$metadata#contacts/$deletedEntity", "id": ghost, "reason": "deleted"}
    ]


async def test_only_select_is_allowed_with_change_tracking(client: httpx.AsyncClient) -> None:
    for option, value in [("filter", "name eq 'x'"), ("orderby", "name"), ("top", "5"), ("expand", "x")]:
        response = await client.get(f"/api/data/v9.2/accounts?${option}={value}", headers=TRACK)
        assert response.status_code == 400
        assert response.json()["error"]["message"] == (
            f'The "${option}" query parameter isn\'t supported when Change Tracking is enabled.'
        )


@pytest.mark.parametrize("expiry_days", [7.0, 30.0])
async def test_an_old_delta_token_answers_expired_version_stamp(
    client: httpx.AsyncClient, sandbox: DataverseSandbox, expiry_days: float
) -> None:
    assert (await client.put("/_admin/change-tracking", json={"expiry_days": expiry_days})).status_code == 200
    _, delta = await read_all(client, f"{API}/leads")
    sandbox.clock.advance(expiry_days * 86400 - 60)
    token = (await client.post("/_admin/token")).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    assert (await client.get(delta.removeprefix(ORG))).status_code == 200
    sandbox.clock.advance(120)
    expired = await client.get(delta.removeprefix(ORG))
    assert expired.status_code == 400
    assert expired.json() == {
        "error": {
            "code": "0x80044352",
            "message": "Version stamp associated with the client has expired. Please perform a full sync.",
        }
    }


async def test_delta_token_looks_like_the_documented_ones(client: httpx.AsyncClient) -> None:
    _, delta = await read_all(client, f"{API}/contacts")
    token = unquote(delta.split("$deltatoken=")[1])
    number, _, stamp = token.partition("!")
    assert number.isdigit()
    assert len(stamp) == len("08/22/2017 08:10:44")


OPS = st.lists(st.tuples(st.sampled_from(["create", "update", "delete"]), st.integers(0, 50)), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds=st.lists(OPS, min_size=1, max_size=3), page_size=st.integers(1, 7))
async def test_delta_feed_replays_to_the_true_state(
    rounds: list[list[tuple[str, int]]], page_size: int
) -> None:
    """A replica built only from the feed (rows upsert, deletes remove) equals the server after each poll."""
    sandbox = DataverseSandbox(seed=11)
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=ORG) as http:
        http.headers["Authorization"] = "Bearer " + (await http.post("/_admin/token")).json()["access_token"]
        await enable_change_tracking(http, "contact")
        for i in range(3):
            await create(http, "contacts", {"lastname": f"seed{i}"})
        replica: dict[str, str] = {}
        items, delta = await read_all(http, f"{API}/contacts?$select=lastname", page_size)
        _apply(replica, items)
        for number, ops in enumerate(rounds):
            await _mutate(http, ops, number)
            items, delta = await read_all(http, delta, page_size)
            row_ids = [i["contactid"] for i in items if "contactid" in i]
            assert len(row_ids) == len(set(row_ids)), "a changed row comes once"
            _apply(replica, items)
            truth = {
                r["contactid"]: r["lastname"]
                for r in (await http.get("/_admin/tables/contacts/rows")).json()["value"]
            }
            assert replica == truth


def _apply(replica: dict[str, str], items: list[dict[str, Any]]) -> None:
    seen_delete = False
    for item in items:
        if "$deletedEntity" in item.get("@odata.context", ""):
            seen_delete = True
            replica.pop(item["id"], None)
        else:
            assert not seen_delete, "rows come before deletes"
            replica[item["contactid"]] = item["lastname"]


async def _mutate(http: httpx.AsyncClient, ops: list[tuple[str, int]], number: int) -> None:
    picker = random.Random(number)  # noqa: S311 -- picks rows for the test, not a secret
    for op, value in ops:
        ids = [r["contactid"] for r in (await http.get("/_admin/tables/contacts/rows")).json()["value"]]
        if op == "create" or not ids:
            await create(http, "contacts", {"lastname": f"n{value}"})
        elif op == "update":
            await http.patch(f"/api/data/v9.2/contacts({picker.choice(ids)})", json={"lastname": f"u{value}"})
        else:
            await http.delete(f"/api/data/v9.2/contacts({picker.choice(ids)})")


async def test_writes_during_paging_are_not_lost(client: httpx.AsyncClient) -> None:
    ids = [await create(client, "contacts", {"lastname": f"p{i}"}) for i in range(6)]
    first = (
        await client.get(
            "/api/data/v9.2/contacts?$select=lastname",
            headers={"Prefer": "odata.track-changes,odata.maxpagesize=2"},
        )
    ).json()
    assert len(first["value"]) == 2
    assert "@odata.deltaLink" not in first
    assert "$skiptoken=" in first["@odata.nextLink"]
    await client.patch(f"/api/data/v9.2/contacts({ids[5]})", json={"lastname": "moved"})
    rest, delta = await read_all(client, first["@odata.nextLink"], 2)
    seen = [r["contactid"] for r in first["value"] + rest]
    assert ids[5] not in seen
    after, _ = await read_all(client, delta)
    assert [(r["contactid"], r["lastname"]) for r in after] == [(ids[5], "moved")]
