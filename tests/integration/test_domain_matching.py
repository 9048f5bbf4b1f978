"""End to end: companies matched by domain on first sync. A HubSpot company's ``domain`` finds the Dataverse
account whose ``websiteurl`` (a whole URL) has that host, through a ``contains`` filter normalized
client-side; two accounts of one host are an ambiguous match, refused and audited."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.config import SyncConfig
from consumers.matching import normalize_domain
from streams.topics import TopicRole
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config
from tests.kafka_reading import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def by_domain() -> SyncConfig:
    """Companies match accounts by domain; accounts are not pushed to HubSpot (the test creates them)."""
    raw = small_config().model_dump(mode="json")
    for step in raw["steps"]:
        if step["name"] == "companies_to_accounts":
            step["match"] = {"source": "domain", "target": "websiteurl", "kind": "domain"}
        if step["name"] == "accounts_to_companies":
            step["create"] = False
    return SyncConfig.model_validate(raw)


async def accounts_of(stack: Stack, host: str) -> list[dict[str, Any]]:
    return [a for a in await stack.dv_all("account") if normalize_domain(a.get("websiteurl")) == host]


async def test_a_company_domain_matches_the_account_with_that_website(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, by_domain()) as stack:
        account = await stack.dv_create(
            "account", {"name": "Example Ltd", "websiteurl": "https://www.Example.com/about"}
        )
        await stack.dv_create("account", {"name": "Not Example", "websiteurl": "https://notexample.com/"})
        for n, url in enumerate(("http://twin.example.org", "twin.example.org/contact")):
            await stack.dv_create("account", {"name": f"Twin {n}", "websiteurl": url})
        await quiet(stack)
        await stack.hs_create("companies", {"name": "Example", "domain": "example.com"})
        await stack.hs_create("companies", {"name": "Twin", "domain": "twin.example.org"})

        async def renamed() -> list[dict[str, Any]] | None:
            found = await accounts_of(stack, "example.com")
            return found if any(a.get("name") == "Example" for a in found) else None

        [matched] = await eventually(renamed, within=60, what="the account matched by domain")
        assert matched["accountid"] == account  # the company's name flowed onto the account it matched
        await quiet(stack)
        assert [a["name"] for a in await accounts_of(stack, "notexample.com")] == ["Not Example"]
        assert len(await accounts_of(stack, "example.com")) == 1
        twins = sorted(a["name"] for a in await accounts_of(stack, "twin.example.org"))
        assert twins == ["Twin 0", "Twin 1"]  # ambiguous: neither taken, none created

        audits = await read_topic(kafka_settings, TopicRole.AUDIT)
        refused = [a for a in audits if (a.get("reason") or "").startswith("ambiguous_match")]
        assert refused
        assert refused[0]["reason"] == "ambiguous_match: 2 candidates"
        assert refused[0]["step"] == "companies_to_accounts"
