"""End to end with the seeds' default configuration (steps 1-5) on a provisioned sandbox: each default
step moves a record with its mapped values, the sync flags decide what syncs, option sets translate by
label (a value with no counterpart skips that field, not the record), and lead mode (L1, L2) works."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdc.hubspot.project import subscriptions_config
from cdc.provisioning.needs import needs_of
from cdc.provisioning.specs import SubscriptionSpec
from consumers.config import SyncConfig
from consumers.loader import load_config
from streams.topics import TopicRole
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack
from tests.kafka_reading import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TABLES = ("contacts", "accounts", "opportunities")


async def dv_row(stack: Stack, table: str, column: str, value: str) -> dict[str, Any] | None:
    rows = [r for r in await stack.dv_all(table) if (r.get(column) or "").lower() == value.lower()]
    return rows[0] if rows else None


async def hs_record(stack: Stack, object_type: str, prop: str, value: str) -> dict[str, Any] | None:
    rows = [
        r
        for r in await stack.hs_all(object_type)
        if (r["properties"].get(prop) or "").lower() == value.lower()
    ]
    return {**rows[0]["properties"], "id": rows[0]["id"]} if rows else None


async def test_every_default_step_moves_a_record_with_its_mapped_values(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, load_config(), tables=TABLES, provision=True) as stack:
        owners = [
            (await stack.hs.post("/_admin/owners", json={"email": email})).json()["id"]
            for email in ("andrew@northwind.example", "janet@northwind.example")
        ]
        # Step 1: HubSpot company -> account (flag on); a company without the flag stays put.
        company = await stack.hs_create(
            "companies",
            {
                "hubspot_owner_id": owners[0],
                "name": "Northwind Traders",
                "city": "Leeds",
                "phone": "+44 113 496 0000",
                "website": "https://northwind.example",
                "lifecyclestage": "customer",
                "sync_to_d365": "true",
            },
        )
        await stack.hs_create("companies", {"name": "Private Co", "city": "York"})
        account = await eventually(
            lambda: dv_row(stack, "account", "name", "Northwind Traders"), what="step 1: the account"
        )
        assert account["address1_city"] == "Leeds"
        assert account["telephone1"] == "+44 113 496 0000"
        assert account["websiteurl"] == "https://northwind.example"
        assert account["cdc_lifecyclestage"] is not None  # translated by label into the created choice
        assert account["cdc_hubspotowner"] == "andrew@northwind.example"  # the owner id, as its email

        # Step 2: HubSpot contact -> Dataverse contact, with its primary company -> parentcustomerid.
        contact = await stack.hs_create(
            "contacts",
            {
                "email": "nancy@northwind.example",
                "firstname": "Nancy",
                "lastname": "Davolio",
                "sync_to_d365": "true",
            },
        )
        await stack.hs_associate("contacts", contact, "companies", company)

        async def parented() -> dict[str, Any] | None:
            row = await dv_row(stack, "contact", "emailaddress1", "nancy@northwind.example")
            return row if row and row.get("_parentcustomerid_value") == account["accountid"] else None

        row = await eventually(parented, what="step 2: the contact with its parent account")
        assert row["firstname"] == "Nancy"
        assert row["lastname"] == "Davolio"
        await stack.hs_update("contacts", contact, {"hubspot_owner_id": owners[1]})

        async def owned() -> dict[str, Any] | None:
            row = await dv_row(stack, "contact", "emailaddress1", "nancy@northwind.example")
            return row if row and row.get("cdc_hubspotowner") == "janet@northwind.example" else None

        await eventually(owned, what="step 2: the contact owner's email")

        # Step 3: Dataverse account edit (flag on) -> HubSpot company.
        await stack.dv_update(
            "account", account["accountid"], {"cdc_synctohubspot": True, "address1_city": "Bath"}
        )

        async def moved() -> dict[str, Any] | None:
            found = await hs_record(stack, "companies", "name", "Northwind Traders")
            return found if found and found.get("city") == "Bath" else None

        await eventually(moved, what="step 3: the company's new city")

        # Step 4: Dataverse contact -> HubSpot contact.
        await stack.dv_update("contact", row["contactid"], {"cdc_synctohubspot": True, "jobtitle": "Buyer"})

        async def titled() -> dict[str, Any] | None:
            found = await hs_record(stack, "contacts", "email", "nancy@northwind.example")
            return found if found and found.get("jobtitle") == "Buyer" else None

        await eventually(titled, what="step 4: the contact's job title")

        # Step 5: Dataverse opportunity -> HubSpot deal, associated with its account's company.
        await stack.dv_create(
            "opportunity",
            {
                "name": "Northwind renewal",
                "cdc_synctohubspot": True,
                "description": "Three-year renewal",
                "parentaccountid@odata.bind": f"/accounts({account['accountid']})",
            },
        )
        deal = await eventually(
            lambda: hs_record(stack, "deals", "dealname", "Northwind renewal"), what="step 5: the deal"
        )
        assert deal["description"] == "Three-year renewal"

        async def associated() -> Any:
            body = (await stack.hs.get(f"/_admin/associations/deals/{deal['id']}")).json()
            return body if company in str(body) else None

        await eventually(associated, what="step 5: the deal's company association")

        await quiet(stack)
        private = await dv_row(stack, "account", "name", "Private Co")
        assert private is None, "a company without sync_to_d365 must not sync"
        assert len([r for r in await stack.dv_all("account") if r.get("name") == "Northwind Traders"]) == 1


async def test_an_option_value_without_a_counterpart_skips_that_field_not_the_record(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, load_config(), tables=TABLES, provision=True) as stack:
        opportunity = await stack.dv_create(
            "opportunity", {"name": "Fabrikam pilot", "cdc_synctohubspot": True, "statuscode": 1}
        )
        created = await eventually(
            lambda: hs_record(stack, "deals", "dealname", "Fabrikam pilot"), what="the deal"
        )
        assert (
            created["dealstage"] == "appointmentscheduled"
        )  # an open opportunity creates the deal in stage 1
        # On Hold has no deal stage: the stage stays, the description still syncs.
        await stack.dv_update(
            "opportunity", opportunity, {"statuscode": 2, "description": "Paused by customer"}
        )

        async def described() -> dict[str, Any] | None:
            found = await hs_record(stack, "deals", "dealname", "Fabrikam pilot")
            return found if found and found.get("description") == "Paused by customer" else None

        deal = await eventually(described, what="the description, without a stage")
        assert deal["dealstage"] == "appointmentscheduled"
        assert deal["d365_status_reason"] == "2"  # the mirror property holds the Dynamics value

        async def counted() -> float:
            # The skip is counted once the batch is published, a moment after the write landed.
            return sum(
                s.value
                for m in stack.metrics.sync_skipped.collect()
                for s in m.samples
                if s.name.endswith("_total") and s.labels.get("reason") == "no_option_counterpart"
            )

        assert await eventually(counted, what="the skip counted", within=10) >= 1


def lead_mode() -> SyncConfig:
    config = load_config()
    steps = tuple(
        s.model_copy(update={"enabled": s.is_lead_step or s.pair.hubspot != "contact"}) for s in config.steps
    )
    return config.model_copy(update={"steps": steps})


async def test_lead_mode_creates_leads_from_hubspot_contacts_and_back(kafka_settings: Any) -> None:
    """No table setting: the poller polls leads because the lead steps are enabled."""
    config = SyncConfig.model_validate(lead_mode().model_dump())
    async with running_stack(kafka_settings, config, provision=True) as stack:
        await stack.hs_create(
            "contacts",
            {
                "email": "lena@contoso.example",
                "firstname": "Lena",
                "lastname": "Lead",
                "sync_to_d365_lead": "true",
            },
        )
        lead = await eventually(
            lambda: dv_row(stack, "lead", "emailaddress1", "lena@contoso.example"), what="L1: the lead"
        )
        assert lead["firstname"] == "Lena"
        assert lead["lastname"] == "Lead"
        assert await dv_row(stack, "contact", "emailaddress1", "lena@contoso.example") is None
        # L2: a lead edit in Dynamics (in the sync set) reaches the HubSpot contact.
        await stack.dv_update("lead", lead["leadid"], {"cdc_synctohubspot": True, "leadqualitycode": 1})

        async def rated() -> dict[str, Any] | None:
            found = await hs_record(stack, "contacts", "email", "lena@contoso.example")
            return found if found and found.get("d365_lead_rating") else None

        contact = await eventually(rated, what="L2: the lead rating on the contact")
        assert contact["d365_lead_rating"] == "1"


async def test_a_contact_whose_company_syncs_later_gets_its_parent_account_across_a_restart(
    kafka_settings: Any,
) -> None:
    """The contact syncs while its company does not (no sync flag): its pair waits for the company, and
    the wait is kept in the link, so a `cdc sync` killed meanwhile forgets nothing. Once the company syncs,
    the contact's Dataverse parent account is set."""
    config = load_config()
    async with running_stack(kafka_settings, config, tables=TABLES, provision=True, processes=True) as stack:
        company = await stack.hs_create("companies", {"name": "Later Ltd"})
        contact = await stack.hs_create(
            "contacts", {"email": "early@later.example", "firstname": "Early", "sync_to_d365": "true"}
        )
        await stack.hs_associate("contacts", contact, "companies", company)

        async def waiting() -> list[dict[str, Any]]:
            latest = {link["link_id"]: link for link in await read_topic(kafka_settings, TopicRole.LINKS)}
            return [
                link for link in latest.values() if any(company in k for k in link.get("waiting_for", ()))
            ]

        await eventually(waiting, within=45, what="the contact's pair waiting for its company")
        row = await dv_row(stack, "contact", "emailaddress1", "early@later.example")
        assert row is not None
        assert row.get("_parentcustomerid_value") is None
        await stack.kill_replica(0)  # kill -9, and a new `cdc sync` process

        await stack.hs_update("companies", company, {"sync_to_d365": "true"})
        account = await eventually(
            lambda: dv_row(stack, "account", "name", "Later Ltd"), within=45, what="the account"
        )

        async def parented() -> dict[str, Any] | None:
            row = await dv_row(stack, "contact", "emailaddress1", "early@later.example")
            return row if row and row.get("_parentcustomerid_value") == account["accountid"] else None

        await eventually(parented, within=45, what="the contact's parent account, once the company synced")
        await eventually(lambda: _none_waiting(waiting), within=30, what="the wait cleared from the link")


async def _none_waiting(waiting: Callable[[], Awaitable[list[dict[str, Any]]]]) -> bool:
    return not await waiting()


async def test_lead_mode_a_matched_pair_holds_both_ids_and_the_contact_its_last_crm_sync_date(
    kafka_settings: Any,
) -> None:
    """A HubSpot contact and a Dynamics lead that exist before the first sync are matched by email: each
    ends holding the other's id (the HubSpot timeline in Dynamics reads ``cdc_hubspotid``), and the
    contact's "Last CRM Sync Date" is the time of the sync's write to it, moved by the next write that
    syncs the pair; the write's echo (webhooks, the reconciler's reads) writes nothing more."""
    config = SyncConfig.model_validate(lead_mode().model_dump())
    async with running_stack(
        kafka_settings,
        config,
        tables=("leads", "accounts", "opportunities"),
        provision=True,
        reconcile=True,
    ) as stack:
        # The webhook for the daemon's own property comes back too (HubSpot sends one for every write):
        # the project app's webhooks file gains that subscription and is deployed again.
        echo = SubscriptionSpec("contact", "propertyChange", "d365_last_crm_sync_date")
        webhooks = subscriptions_config(None, (*needs_of(config).subscriptions, echo)).component
        subscribed = await stack.hs.put("/_admin/project/webhooks", json=webhooks)
        assert subscribed.status_code == 200, subscribed.text
        await stack.stop_sync()  # both records exist before the sync sees either: a first sync matches
        contact = await stack.hs_create(
            "contacts",
            {"email": "mia@contoso.example", "lastname": "Match", "sync_to_d365_lead": "true"},
        )
        lead = await stack.dv_create(
            "lead",
            {
                "emailaddress1": "mia@contoso.example",
                "lastname": "Match",
                "subject": "Matched lead",
                "cdc_synctohubspot": True,
            },
        )
        await stack.start_sync()

        async def stamped() -> tuple[dict[str, Any], dict[str, Any]] | None:
            hs = await hs_record(stack, "contacts", "email", "mia@contoso.example")
            dv = await dv_row(stack, "lead", "emailaddress1", "mia@contoso.example")
            if hs and dv and hs.get("cdc_d365id") and dv.get("cdc_hubspotid"):
                return hs, dv
            return None

        hs, dv = await eventually(stamped, within=45, what="both ids on the matched pair")
        assert (hs["id"], hs["cdc_d365id"]) == (contact, lead)
        assert dv["cdc_hubspotid"] == contact
        assert len(await stack.dv_all("lead")) == 1  # matched, not created
        assert len(await stack.hs_all("contacts")) == 1
        first_sync = hs.get("d365_last_crm_sync_date")
        assert first_sync, "the first sync's write to the contact carries the time of the sync"

        await quiet(stack)
        edited = datetime.now(UTC).replace(microsecond=0)
        await stack.dv_update("lead", lead, {"jobtitle": "Buyer"})

        async def moved() -> dict[str, Any] | None:
            found = await hs_record(stack, "contacts", "email", "mia@contoso.example")
            return found if found and found.get("jobtitle") == "Buyer" else None

        hs = await eventually(moved, within=30, what="L2: the lead's job title on the contact")
        synced_at = datetime.fromisoformat(hs["d365_last_crm_sync_date"])
        assert synced_at >= edited > datetime.fromisoformat(first_sync) - timedelta(seconds=1)

        # The echo of that write (its webhooks, the reconciler re-reading the contact with its new Last CRM
        # Sync Date) is no change: nothing more is written, the date stays.
        async def came_back() -> bool:
            return any(
                "d365_last_crm_sync_date" in (event.get("changed_properties") or {})
                and event.get("object_id") == contact
                for event in await read_topic(kafka_settings, TopicRole.CHANGES_HUBSPOT)
            )

        await eventually(came_back, within=30, what="the webhook for Last CRM Sync Date on Kafka")
        writes = await quiet(stack, for_s=6.0, within=45)
        calls = await stack.write_calls()
        await asyncio.sleep(5.0)  # the reconciler pages contacts every 2 s
        assert stack.sync_writes() == writes
        assert await stack.write_calls() == calls
        after = await hs_record(stack, "contacts", "email", "mia@contoso.example")
        assert after is not None
        assert after["d365_last_crm_sync_date"] == hs["d365_last_crm_sync_date"]
        assert after["cdc_d365id"] == lead
