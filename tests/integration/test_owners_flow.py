"""End to end on the sandbox with real Kafka, `lookup: owner`: a HubSpot contact's owner becomes the
Dataverse contact's ``ownerid`` (the user with the same email), a Dataverse owner change goes back as the
HubSpot owner with that email, and an owner with no enabled counterpart is skipped and counted while the
record still syncs."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.config import SyncConfig
from streams.topics import TopicRole
from tests.integration.sync_stack import Stack, eventually, running_stack, small_config
from tests.kafka_reading import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ROWS = {
    "contacts_to_contacts": {"source": "hubspot_owner_id", "target": "_ownerid_value", "lookup": "owner"},
    "contacts_to_hubspot_contacts": {
        "source": "_ownerid_value",
        "target": "hubspot_owner_id",
        "lookup": "owner",
    },
}


def with_owners() -> SyncConfig:
    raw = small_config().model_dump(mode="json")
    for step in raw["steps"]:
        if step["name"] in ROWS:
            step["fields"].append(ROWS[step["name"]])
    return SyncConfig.model_validate(raw)


def skipped(stack: Stack, reason: str) -> float:
    return sum(
        s.value
        for metric in stack.metrics.sync_skipped.collect()
        for s in metric.samples
        if s.name.endswith("_total") and s.labels["reason"] == reason
    )


async def owner_of(stack: Stack, email: str) -> str | None:
    for row in await stack.dv_all("contact"):
        if str(row.get("emailaddress1") or "").lower() == email:
            return str(row.get("_ownerid_value"))
    return None


async def test_owner_changes_travel_both_ways_by_email_and_unknown_owners_are_skipped(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, with_owners()) as stack:

        async def hs_owner(email: str) -> str:
            answer = await stack.hs.post("/_admin/owners", json={"email": email})
            assert answer.status_code == 201, answer.text
            return str(answer.json()["id"])

        ann, bob, cy, dee = [await hs_owner(f"{n}@owners.example") for n in ("ann", "bob", "cy", "dee")]
        ann_user = await stack.dv_create(
            "systemuser", {"lastname": "Ann", "internalemailaddress": "ANN@owners.example"}
        )
        bob_user = await stack.dv_create(
            "systemuser", {"lastname": "Bob", "internalemailaddress": "bob@owners.example"}
        )
        await stack.dv_create(
            "systemuser", {"lastname": "Cy", "internalemailaddress": "cy@owners.example", "isdisabled": True}
        )

        # HubSpot -> Dataverse: Ann owns the HubSpot contact, so Ann's user owns the Dataverse one.
        hs_id = await stack.hs_create(
            "contacts", {"email": "jo@example.com", "lastname": "Jo", "hubspot_owner_id": ann}
        )

        async def owned_by(email: str, user: str) -> bool:
            return await owner_of(stack, email) == user

        await eventually(
            lambda: owned_by("jo@example.com", ann_user), within=60, what="Ann owning Jo in Dataverse"
        )

        # Dataverse -> HubSpot: the contact given to Bob's user is Bob's in HubSpot.
        dv_id = next(
            str(r["contactid"])
            for r in await stack.dv_all("contact")
            if r.get("emailaddress1") == "jo@example.com"
        )
        await stack.dv_update("contact", dv_id, {"ownerid@odata.bind": f"/systemusers({bob_user})"})

        async def hubspot_owner() -> str | None:
            found = [r for r in await stack.hs_all("contacts") if r["id"] == hs_id]
            owner = found[0]["properties"].get("hubspot_owner_id") if found else None
            return owner if owner == bob else None

        await eventually(hubspot_owner, within=60, what="Bob owning Jo in HubSpot")

        # Cy's only user is disabled: the owner is skipped and counted, the contact still syncs.
        await stack.hs_create(
            "contacts", {"email": "kim@example.com", "lastname": "Kim", "hubspot_owner_id": cy}
        )

        async def kim_synced() -> bool:
            return (
                await owner_of(stack, "kim@example.com") is not None and skipped(stack, "owner_disabled") > 0
            )

        await eventually(kim_synced, within=60, what="Kim synced with her owner skipped")
        assert await owner_of(stack, "kim@example.com") != bob_user

        async def audited() -> list[dict[str, Any]]:
            audits = await read_topic(kafka_settings, TopicRole.AUDIT)
            return [a for a in audits if a["action"] == "skip" and "owner_" in str(a["reason"])]

        # Dee has no Dataverse user at all: skipped as such, counted, and Dee's contact syncs too.
        await stack.hs_create(
            "contacts", {"email": "lee@example.com", "lastname": "Lee", "hubspot_owner_id": dee}
        )

        async def lee_synced() -> bool:
            found = await owner_of(stack, "lee@example.com") is not None
            return found and skipped(stack, "owner_no_counterpart") > 0

        await eventually(lee_synced, within=60, what="Lee synced with her owner skipped")

        [audit, *_] = await eventually(audited, within=30, what="the owner skip in the audit topic")
        assert audit["reason"] == "owner_disabled (_ownerid_value)"
        assert audit["step"] == "contacts_to_contacts"
