"""The admin API: seed and edit rows as a user (change tracking sees it), inspect, calls, clock."""

from __future__ import annotations

import httpx
import pytest

from cdc.sandbox.dataverse import DataverseSandbox
from tests.sandbox.dataverse.support import ORG, enable_change_tracking


@pytest.fixture
async def client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The tables these tests read are change-tracked, as `cdc provision --dataverse` leaves them."""
    await enable_change_tracking(client, "contact")
    return client


async def test_user_edits_land_in_change_tracking(client: httpx.AsyncClient) -> None:
    seeded = await client.post(
        "/_admin/tables/contact/rows", json={"rows": [{"lastname": "a"}, {"lastname": "b"}]}
    )
    assert seeded.status_code == 201
    first, second = (r["contactid"] for r in seeded.json()["value"])
    initial = (
        await client.get(
            "/api/data/v9.2/contacts?$select=lastname", headers={"Prefer": "odata.track-changes"}
        )
    ).json()
    assert len(initial["value"]) == 2
    edited = await client.patch(f"/_admin/tables/contacts/rows/{first}", json={"lastname": "a2"})
    assert edited.json()["lastname"] == "a2"
    assert (await client.delete(f"/_admin/tables/contacts/rows/{second}")).status_code == 204
    delta = (await client.get(initial["@odata.deltaLink"].removeprefix(ORG))).json()["value"]
    assert delta[0]["lastname"] == "a2"
    assert delta[1]["id"] == second
    bad = await client.post("/_admin/tables/contact/rows", json={"nope": 1})
    assert bad.status_code == 400
    assert (
        await client.get("/_admin/tables/contact/rows/00000000-0000-4000-8000-000000000000")
    ).status_code == 404


async def test_calls_are_counted_per_endpoint_and_reset(client: httpx.AsyncClient) -> None:
    await client.delete("/_admin/calls")
    await client.get("/api/data/v9.2/contacts")
    await client.get("/api/data/v9.2/accounts")
    await client.get("/api/data/v9.2/contacts(00000000-0000-4000-8000-000000000000)")
    snapshot = (await client.get("/_admin/calls")).json()
    assert snapshot["by_endpoint"] == {
        "GET /api/data/v9.2/{entityset}": 2,
        "GET /api/data/v9.2/{entityset}({key})": 1,
    }
    assert snapshot["by_status"] == {"200": 2, "404": 1}
    assert (await client.delete("/_admin/calls")).json()["total"] == 0


async def test_clock_and_state(client: httpx.AsyncClient, sandbox: DataverseSandbox) -> None:
    advanced = await client.post("/_admin/clock/advance", json={"seconds": 60})
    assert advanced.json()["offset_s"] == 60
    assert (await client.post("/_admin/clock/advance", json={"seconds": -1})).status_code == 400
    assert (await client.put("/_admin/change-tracking", json={"expiry_days": 400})).status_code == 400
    state = (await client.get("/_admin/state")).json()
    assert state["tenant_id"] == sandbox.tenant_id
    tables = ("contact", "account", "lead", "opportunity", "systemuser", "team", "campaign")
    assert state["rows"] == dict.fromkeys(tables, 0)
    assert (await client.put("/_admin/faults", json={"nope": 1})).status_code == 400
    key = await client.post(
        "/_admin/tables/account/keys", json={"name": "cdc_num", "columns": ["accountnumber"]}
    )
    assert key.status_code == 201
