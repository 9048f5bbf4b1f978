"""End to end: a HubSpot value the daemon's app wrote whose link update never committed is not taken for a
user's edit (the lost update chaos seed 136 found).

A sync replica writes a Dataverse value to HubSpot and is SIGKILLed before its Kafka transaction (link
update and audit) commits; the user then edits the Dataverse field again. The replica that takes over
reads HubSpot's value (the daemon's own, unrecorded) and the user's newer Dataverse value, both unlike the
link: with ``step_order`` HubSpot used to win, writing the old value over the user's edit. HubSpot's
property history names the writer (``sourceType`` INTEGRATION, ``sourceId`` the app id for writes made
with the app's token: fact sheet reference/hubspot.md §3.3 and §6; the sandbox records its API writes so),
so the value counts as synced and the user's Dataverse edit wins.

Here the unrecorded write is made by hand, through the API with the app's token while `cdc sync` is
stopped, exactly as the killed replica's write landed: no link update, no audit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EMAIL = "owned@example.com"


async def cities(stack: Stack) -> tuple[str | None, str | None]:
    hs = [r for r in await stack.hs_all("contacts") if r["properties"].get("email") == EMAIL]
    dv = [r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").lower() == EMAIL]
    return (
        hs[0]["properties"].get("city") if hs else None,
        dv[0].get("address1_city") if dv else None,
    )


async def write_as_the_app(stack: Stack, contact_id: str, properties: dict[str, Any]) -> None:
    """A write through HubSpot's API with the app's token (the sandbox's static token is the app's)."""
    hub = stack.box.info.hubspot
    version = stack.settings.hubspot.api_version
    path = (
        f"/crm/v3/objects/contacts/{contact_id}"
        if version == "legacy"
        else (f"/crm/objects/{version}/contacts/{contact_id}")
    )
    answer = await stack.hs.patch(
        path, json={"properties": properties}, headers={"Authorization": f"Bearer {hub.token}"}
    )
    assert answer.status_code == 200, answer.text


async def test_the_apps_unrecorded_hubspot_write_loses_to_the_users_newer_dataverse_edit(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:  # conflict: step_order, HubSpot first
        hs_id = await stack.hs_create("contacts", {"email": EMAIL, "city": "e12"})
        await eventually(lambda: _when(cities(stack), ("e12", "e12")), what="the first sync")
        await quiet(stack)
        await stack.stop_sync()  # the replica "dies" here: its write lands, its link update never does
        dv_id = next(r["contactid"] for r in await stack.dv_all("contact") if r.get("emailaddress1") == EMAIL)
        await write_as_the_app(stack, hs_id, {"city": "e65"})  # the Dataverse value it was sending
        await stack.dv_update("contact", dv_id, {"address1_city": "e197"})  # the user's newer edit
        await asyncio.sleep(1.5)  # both changes are on Kafka before a replica takes over
        await stack.start_sync()

        settled = await eventually(lambda: _agreed(cities(stack)), what="both sides holding one city again")
        await quiet(stack)
        assert settled == "e197"  # before the fix: "e65", the daemon's echo over the user's edit
        assert await cities(stack) == ("e197", "e197")


async def _when(got: Any, wanted: tuple[str, str]) -> bool:
    return bool(await got == wanted)


async def _agreed(got: Any) -> str | None:
    hs, dv = await got
    return hs if hs == dv and hs != "e12" else None


async def test_a_replica_killed_between_its_dataverse_write_and_its_commit_loses_no_edit(
    kafka_settings: Any,
) -> None:
    """The same crash window for a value written to Dataverse, which has no per-column history: a real
    `cdc sync` process writes HubSpot's e65 to Dataverse and is SIGKILLed while the answer is on its way
    (the write landed; its Kafka transaction never began). The user then edits HubSpot again (e197).
    With ``source_of_truth: dynamics`` the replica taking over used to see Dataverse's e65 as a Dataverse
    edit and write it over the user's e197; the killed replica's notes in `sync.sent`, kept before its
    write, tell it e65 is the daemon's own."""
    config = small_config(conflict="source_of_truth:dynamics")
    async with running_stack(kafka_settings, config, processes=True) as stack:
        hs_id = await stack.hs_create("contacts", {"email": EMAIL, "city": "e12"})
        await eventually(lambda: _when(cities(stack), ("e12", "e12")), what="the first sync")
        await quiet(stack)

        await stack.dv.put("/_admin/faults", json={"answer_delay_ms": 8000})  # writes land, answers wait
        await stack.hs_update("contacts", hs_id, {"city": "e65"})
        await eventually(lambda: _when(cities(stack), ("e65", "e65")), within=60, what="the write landing")
        await stack.kill_replica(0, restart=False)  # SIGKILL while it waits for the answer
        await stack.dv.put("/_admin/faults", json={"answer_delay_ms": 0})

        await stack.hs_update("contacts", hs_id, {"city": "e197"})  # the user's newer edit
        await asyncio.sleep(1.5)
        await stack.add_replica()  # takes the partitions over
        settled = await eventually(lambda: _agreed(cities(stack)), within=60, what="one city on both sides")
        await quiet(stack)
        assert settled == "e197"  # before: "e65", the daemon's own Dataverse write over the user's edit
        assert await cities(stack) == ("e197", "e197")
