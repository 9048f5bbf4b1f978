"""End to end: an opportunity won in Dynamics makes its contact and account customers in HubSpot (a rule),
never moving a lifecycle stage backwards in HubSpot's order; the deals the step creates carry its
``on_create`` constants. Every rule write and refusal is audited."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.config import SyncConfig
from streams.topics import TopicRole
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config
from tests.kafka_reading import read_topic
from tests.sync_configs import DEAL_STEP, WON_RULE

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
RULE = str(WON_RULE["name"])


def with_deals() -> SyncConfig:
    raw = small_config().model_dump(mode="json")
    raw["steps"].append(DEAL_STEP)
    raw["rules"] = [WON_RULE]
    return SyncConfig.model_validate(raw)


async def hs_props(stack: Stack, object_type: str, object_id: str) -> dict[str, Any]:
    answer = await stack.hs.get(f"/_admin/objects/{object_type}/{object_id}")
    assert answer.status_code == 200, answer.text
    props: dict[str, Any] = answer.json()["properties"]
    return props


async def dv_id(stack: Stack, table: str, column: str, value: str) -> str | None:
    rows = [r for r in await stack.dv_all(table) if r.get(column) == value]
    return str(rows[0][f"{table}id"]) if rows else None


async def test_a_won_opportunity_makes_its_contact_and_account_customers_never_backwards(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, with_deals()) as stack:
        company = await stack.hs_create("companies", {"name": "Acme Rules", "lifecyclestage": "lead"})
        buyer = await stack.hs_create(
            "contacts",
            {"email": "buyer@acme.test", "lastname": "Buyer", "lifecyclestage": "salesqualifiedlead"},
        )
        fan = await stack.hs_create(
            "contacts", {"email": "fan@acme.test", "lastname": "Fan", "lifecyclestage": "evangelist"}
        )

        async def mirrored() -> tuple[str, str, str] | None:
            ids = (
                await dv_id(stack, "account", "name", "Acme Rules"),
                await dv_id(stack, "contact", "emailaddress1", "buyer@acme.test"),
                await dv_id(stack, "contact", "emailaddress1", "fan@acme.test"),
            )
            return (ids[0], ids[1], ids[2]) if all(ids) else None  # type: ignore[return-value]

        account, buyer_row, fan_row = await eventually(mirrored, within=60, what="the account and contacts")
        opportunities = {}
        for name, contact in (("Acme renewal", buyer_row), ("Acme referral", fan_row)):
            opportunities[name] = await stack.dv_create(
                "opportunity",
                {
                    "name": name,
                    "parentaccountid@odata.bind": f"/accounts({account})",
                    "parentcontactid@odata.bind": f"/contacts({contact})",
                },
            )

        async def deals() -> list[dict[str, Any]] | None:
            found = [
                d["properties"]
                for d in await stack.hs_all("deals")
                if d["properties"].get("dealname", "").startswith("Acme")
            ]
            return found if len(found) == 2 else None

        for deal in await eventually(deals, within=60, what="the two deals"):
            assert (deal["pipeline"], deal["dealstage"]) == ("default", "appointmentscheduled")  # on_create
        await quiet(stack)
        assert (await hs_props(stack, "contacts", buyer))[
            "lifecyclestage"
        ] == "salesqualifiedlead"  # still open

        for row in opportunities.values():
            await stack.dv_update("opportunity", row, {"statecode": 1, "statuscode": 3})

        async def customers() -> bool:
            stages = [
                (await hs_props(stack, kind, record_id)).get("lifecyclestage")
                for kind, record_id in (("contacts", buyer), ("companies", company))
            ]
            return stages == ["customer", "customer"]

        await eventually(customers, within=60, what="the won opportunity's contact and company as customers")
        await quiet(stack)
        assert (await hs_props(stack, "contacts", fan))["lifecyclestage"] == "evangelist"  # never backwards

        audits = [a for a in await read_topic(kafka_settings, TopicRole.AUDIT) if a["step"] == RULE]
        written = {a["target"]["object_id"] for a in audits if a["action"] == "update"}
        assert written == {buyer, company}
        assert all(
            f["new"] == "customer" and f["rule"] == f"rule:{RULE}" for a in audits for f in a["fields"]
        )
        [refused] = [a for a in audits if a["action"] == "skip"]
        assert refused["target"]["object_id"] == fan
        assert refused["reason"].startswith("lifecycle_backwards: lifecyclestage stays 'evangelist'")


async def test_a_rule_allowed_backwards_clears_the_stage_and_sets_it(kafka_settings: Any) -> None:
    raw = with_deals().model_dump(mode="json")
    raw["rules"][0]["allow_backwards"] = True
    async with running_stack(kafka_settings, SyncConfig.model_validate(raw)) as stack:
        fan = await stack.hs_create(
            "contacts", {"email": "back@acme.test", "lastname": "Back", "lifecyclestage": "evangelist"}
        )
        row = await eventually(
            lambda: dv_id(stack, "contact", "emailaddress1", "back@acme.test"), within=60, what="the contact"
        )
        await stack.dv_create(
            "opportunity",
            {
                "name": "Back won",
                "statecode": 1,
                "statuscode": 3,
                "parentcontactid@odata.bind": f"/contacts({row})",
            },
        )

        async def customer() -> bool:
            return (await hs_props(stack, "contacts", fan)).get("lifecyclestage") == "customer"

        await eventually(customer, within=60, what="the evangelist made a customer, backwards")
        await quiet(stack)  # the audit records commit with the batch, after its writes land
        audits = [a for a in await read_topic(kafka_settings, TopicRole.AUDIT) if a["step"] == RULE]
        assert [[f["new"] for f in a["fields"]] for a in audits] == [[""], ["customer"]]  # cleared, then set
