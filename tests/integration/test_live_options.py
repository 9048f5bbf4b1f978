"""Live option sets end to end (sandbox CRMs, real Kafka): a label an admin adds on both sides syncs once
`cdc sync` has read the labels again, without a restart or a new configuration; until the second side has
it, the field is skipped and counted."""

from __future__ import annotations

import asyncio
from typing import Any

from cdc.sandbox.dataverse.context import API_PREFIX
from consumers.config import SyncConfig
from tests.integration.sync_stack import Stack, eventually, running_stack, small_config

REFRESH_S = 1.0
TIER = {"source": "cdc_tier", "target": "cdc_tier", "source_type": "option", "target_type": "option"}


def tier_config() -> SyncConfig:
    """The small configuration with a custom choice, ``cdc_tier``, both ways; its labels are live."""
    raw = small_config().model_dump(mode="json")
    for step in raw["steps"]:
        if step["name"] in {"companies_to_accounts", "accounts_to_companies"}:
            step["fields"].append({**TIER, "options": "tier", "custom": True, "label": "Tier"})
    raw["option_sets"] = {
        "tier": {"hubspot": {"gold": "Gold"}, "dataverse": {"100000000": "Gold"}, "live": True}
    }
    return SyncConfig.model_validate(raw)


async def hubspot_add_option(stack: Stack, value: str, label: str) -> None:
    """As an admin would through HubSpot's properties API: the options list, with one more."""
    token = (await stack.hs.get("/_admin/info")).json()["token"]  # the private app's static token
    headers = {"Authorization": f"Bearer {token}"}
    path = "/crm/v3/properties/companies/cdc_tier"
    prop = (await stack.hs.get(path, headers=headers)).json()
    options = [*prop["options"], {"label": label, "value": value, "displayOrder": 9, "hidden": False}]
    answer = await stack.hs.patch(path, json={"options": options}, headers=headers)
    assert answer.status_code == 200, answer.text


async def dataverse_add_option(stack: Stack, label: str) -> int:
    """As an admin would through the Web API's ``InsertOptionValue``; the new option's value."""
    token = (await stack.dv.post("/_admin/token")).json()["access_token"]
    body = {
        "EntityLogicalName": "account",
        "AttributeLogicalName": "cdc_tier",
        "Label": {"LocalizedLabels": [{"Label": label, "LanguageCode": 1033}]},
    }
    answer = await stack.dv.post(
        f"{API_PREFIX}/InsertOptionValue", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["NewOptionValue"])


async def account_tier(stack: Stack, name: str) -> dict[str, Any] | None:
    rows = [r for r in await stack.dv_all("account") if r.get("name") == name]
    return rows[0] if rows else None


def skipped(stack: Stack) -> float:
    return sum(
        s.value
        for metric in stack.metrics.sync_skipped.collect()
        for s in metric.samples
        if s.name.endswith("_total") and s.labels.get("reason") == "no_option_counterpart"
    )


async def test_a_label_added_on_both_sides_syncs_after_the_next_refresh(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, tier_config(), provision=True) as stack:
        # `cdc sync` once more with a short refresh; from here on it keeps running.
        await stack.stop_sync()
        sync = stack.settings.sync.model_copy(update={"options_refresh_s": REFRESH_S})
        stack.settings = stack.settings.model_copy(update={"sync": sync})
        await stack.start_sync()

        await stack.hs_create("companies", {"name": "Acme", "cdc_tier": "gold"})
        acme = await eventually(lambda: account_tier(stack, "Acme"), what="Acme in Dataverse")
        assert acme["cdc_tier"] == 100000000

        # A label on HubSpot's side only: the company syncs, its tier is skipped and counted.
        await hubspot_add_option(stack, "platinum", "Platinum")
        await asyncio.sleep(REFRESH_S * 2.5)
        before = skipped(stack)
        await stack.hs_create("companies", {"name": "Beta", "cdc_tier": "platinum"})
        beta = await eventually(lambda: account_tier(stack, "Beta"), what="Beta in Dataverse")
        assert beta.get("cdc_tier") is None
        await eventually(lambda: asyncio.sleep(0, skipped(stack) > before), what="the skip counted")

        # The same label (another case and spacing) on Dataverse's side: after a refresh it maps.
        value = await dataverse_add_option(stack, " platinum  ")
        await asyncio.sleep(REFRESH_S * 2.5)
        await stack.hs_create("companies", {"name": "Gamma", "cdc_tier": "platinum"})

        async def gamma() -> dict[str, Any] | None:
            row = await account_tier(stack, "Gamma")
            return row if row and row.get("cdc_tier") == value else None

        await eventually(gamma, what="Gamma's new tier in Dataverse")
