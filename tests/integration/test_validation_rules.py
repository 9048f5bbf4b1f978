"""End to end on the 2026-09 API: a HubSpot admin's validation rule refuses one record of a batch the sync
writes (hs:changelog/crm-api-write-validation-enforcement: from API version 2026-09, a 400
``VALIDATION_ERROR`` with ``errors[].code`` ``MISSING_REQUIRED_PROPERTY``). That record is dead-lettered
with the rule's message, the batch's other records reach HubSpot, and the pipeline keeps moving."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.config import SyncConfig
from streams.topics import TopicRole
from tests.integration.sync_stack import Stack, eventually, running_stack, small_config
from tests.kafka_reading import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
RULE = "Every contact needs a job title (sales ops, 2026)."


def with_job_titles() -> SyncConfig:
    """The small two-way configuration, Dataverse contacts carrying their job title to HubSpot too."""
    raw = small_config().model_dump(mode="json")
    for step in raw["steps"]:
        if step["name"] == "contacts_to_hubspot_contacts":
            step["fields"].append({"source": "jobtitle", "target": "jobtitle"})
    return SyncConfig.model_validate(raw)


async def hubspot_emails(stack: Stack) -> dict[str, dict[str, Any]]:
    return {
        str(r["properties"].get("email")).lower(): r["properties"]
        for r in await stack.hs_all("contacts")
        if r["properties"].get("email")
    }


async def test_a_contact_a_validation_rule_refuses_is_dead_lettered_and_the_others_sync(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, with_job_titles()) as stack:
        assert stack.settings.hubspot.api_version == "2026-09"
        rule = {"objectType": "contacts", "propertyName": "jobtitle", "message": RULE}
        assert (await stack.hs.post("/_admin/validation-rules", json=rule)).status_code == 201
        titled = [f"titled{n}@example.com" for n in range(4)]
        for n, email in enumerate(titled[:2]):
            await stack.dv_create(
                "contact", {"emailaddress1": email, "lastname": f"T{n}", "jobtitle": "Buyer"}
            )
        await stack.dv_create("contact", {"emailaddress1": "untitled@example.com", "lastname": "Bare"})
        for n, email in enumerate(titled[2:], start=2):
            await stack.dv_create(
                "contact", {"emailaddress1": email, "lastname": f"T{n}", "jobtitle": "Buyer"}
            )

        async def all_titled() -> dict[str, dict[str, Any]] | None:
            found = await hubspot_emails(stack)
            return found if set(titled) <= set(found) else None

        synced = await eventually(all_titled, within=60, what="the titled contacts in HubSpot")
        assert all(synced[email]["jobtitle"] == "Buyer" for email in titled)

        async def refused() -> list[dict[str, Any]]:
            letters = await read_topic(kafka_settings, TopicRole.DEADLETTER)
            return [letter for letter in letters if "jobtitle" in letter["error"]]

        [letter] = await eventually(refused, within=60, what="the untitled contact's dead letter")
        assert f"VALIDATION_ERROR (jobtitle): {RULE}" in letter["error"]
        assert letter["step"] == "contacts_to_hubspot_contacts"
        assert "untitled@example.com" not in await hubspot_emails(stack)

        # The partition keeps moving: a contact created afterwards, with a title, syncs.
        await stack.dv_create(
            "contact", {"emailaddress1": "later@example.com", "lastname": "L", "jobtitle": "CFO"}
        )

        async def later() -> bool:
            return "later@example.com" in await hubspot_emails(stack)

        await eventually(later, within=60, what="a later contact to sync")
