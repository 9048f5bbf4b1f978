"""Change tracking is per table and off until enabled through the metadata API (fact sheet §1.1; Learn,
create-update-entity-definitions-using-web-api, "Update table definitions")."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.dataverse.support import create, enable_change_tracking

DEFINITION = "/api/data/v9.2/EntityDefinitions(LogicalName='lead')"
MERGE = {"MSCRM.MergeLabels": "true"}


async def definition(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(DEFINITION)).json()
    body.pop("@odata.context", None)
    return body


async def test_a_table_without_change_tracking_answers_a_tracking_read_as_an_ordinary_query(
    client: httpx.AsyncClient,
) -> None:
    """No error and no delta link: rows, ordinary nextLinks, no Preference-Applied (fact sheet §1.1)."""
    for n in range(3):
        await create(client, "leads", {"subject": f"S{n}", "lastname": f"L{n}"})
    first = await client.get(
        "/api/data/v9.2/leads?$select=subject", headers={"Prefer": "odata.track-changes,odata.maxpagesize=2"}
    )
    assert first.status_code == 200
    assert "odata.track-changes" not in first.headers.get("Preference-Applied", "")
    body = first.json()
    assert len(body["value"]) == 2
    assert "@odata.deltaLink" not in body
    assert 'istracking="False"' in httpx.URL(body["@odata.nextLink"]).params["$skiptoken"]
    last = (await client.get(body["@odata.nextLink"], headers={"Prefer": "odata.track-changes"})).json()
    assert len(last["value"]) == 1
    assert "@odata.deltaLink" not in last
    assert "@odata.nextLink" not in last


async def test_enabling_it_takes_a_put_of_the_whole_definition(client: httpx.AsyncClient) -> None:
    before = await definition(client)
    assert before["ChangeTrackingEnabled"] is False
    assert before["CanChangeTrackingBeEnabled"] == {
        "Value": True,
        "CanBeChanged": False,
        "ManagedPropertyLogicalName": "canchangetrackingbeenabled",
    }
    listed = (
        await client.get(
            "/api/data/v9.2/EntityDefinitions?$select=LogicalName,ChangeTrackingEnabled"
            "&$filter=ChangeTrackingEnabled eq true"
        )
    ).json()
    assert listed["value"] == []
    patched = await client.patch(DEFINITION, json={"ChangeTrackingEnabled": True})
    assert patched.status_code == 405
    await enable_change_tracking(client, "lead")
    after = await definition(client)
    assert after["ChangeTrackingEnabled"] is True
    assert after["DisplayName"] == before["DisplayName"]
    tracked = await client.get("/api/data/v9.2/leads", headers={"Prefer": "odata.track-changes"})
    assert tracked.headers["Preference-Applied"] == "odata.track-changes"
    assert "$deltatoken=" in tracked.json()["@odata.deltaLink"]


async def test_a_put_replaces_the_definition(client: httpx.AsyncClient) -> None:
    """What the body leaves out takes its default: labels without MergeLabels, and ChangeTrackingEnabled,
    which once on cannot be turned off (CT)."""
    await enable_change_tracking(client, "lead")
    partial = await client.put(DEFINITION, json={"LogicalName": "lead"}, headers=MERGE)
    assert partial.status_code == 400
    assert "cannot be disabled" in partial.json()["error"]["message"]
    body = await definition(client)
    body.pop("DisplayName")
    assert (await client.put(DEFINITION, json=body)).status_code == 204
    assert (await definition(client))["DisplayName"]["LocalizedLabels"] == []
    other = {**body, "LogicalName": "contact"}
    assert (await client.put(DEFINITION, json=other, headers=MERGE)).status_code == 400


async def test_a_table_that_cannot_be_tracked_refuses_it(client: httpx.AsyncClient) -> None:
    locked = await client.put("/_admin/tables/lead/change-tracking", json={"can_be_enabled": False})
    assert locked.json() == {"enabled": False, "can_be_enabled": False}
    body = await definition(client)
    assert body["CanChangeTrackingBeEnabled"]["Value"] is False
    refused = await client.put(DEFINITION, json={**body, "ChangeTrackingEnabled": True}, headers=MERGE)
    assert refused.status_code == 400
    assert "CanChangeTrackingBeEnabled" in refused.json()["error"]["message"]
    assert (await definition(client))["ChangeTrackingEnabled"] is False
