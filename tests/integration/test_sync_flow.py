"""End to end: edits made as a user in one sandbox CRM land in the other through webhooks / change
tracking, Kafka and `cdc sync`; and the pipeline goes quiet afterwards (no echo, no ping-pong)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cdc.metrics import Metrics
from cdc.ops.replay import replay
from consumers.config import ConflictPolicy
from streams.clients import make_producer
from streams.topics import TopicCatalog, TopicRole
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config
from tests.kafka_reading import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def by_email(rows: list[dict[str, Any]], email: str, *, field: str) -> list[dict[str, Any]]:
    return [r for r in rows if (r.get(field) or "").lower() == email.lower()]


async def dv_contact(stack: Stack, email: str) -> dict[str, Any] | None:
    rows = by_email(await stack.dv_all("contact"), email, field="emailaddress1")
    return rows[0] if rows else None


async def hs_contact(stack: Stack, email: str) -> dict[str, Any] | None:
    rows = [
        r for r in await stack.hs_all("contacts") if (r["properties"].get("email") or "").lower() == email
    ]
    return rows[0]["properties"] | {"id": rows[0]["id"]} if rows else None


async def test_contacts_flow_both_ways_and_the_pipeline_goes_quiet(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        # HubSpot -> Dataverse: a new contact is created with the mapped values.
        await stack.hs_create(
            "contacts", {"email": "Ada@Example.com", "firstname": "Ada", "lastname": "King"}
        )

        async def landed() -> dict[str, Any] | None:
            row = await dv_contact(stack, "ada@example.com")
            return row if row and row.get("lastname") == "King" else None

        row = await eventually(landed, what="the HubSpot contact in Dataverse")
        assert row["firstname"] == "Ada"

        # Dataverse -> HubSpot: an edit flows back (telephone1 is mapped one way, DV -> HS).
        await stack.dv_update(
            "contact", row["contactid"], {"telephone1": "+44 20 7946 0000", "firstname": "Augusta"}
        )

        async def back() -> dict[str, Any] | None:
            found = await hs_contact(stack, "ada@example.com")
            return found if found and found.get("phone") == "+44 20 7946 0000" else None

        hs = await eventually(back, what="the Dataverse edit in HubSpot")
        assert hs["firstname"] == "Augusta"

        # No ping-pong: once quiet, nothing more is written, and both sides agree.
        writes = await quiet(stack)
        await asyncio.sleep(2.0)
        assert stack.sync_writes() == writes
        assert len(by_email(await stack.dv_all("contact"), "ada@example.com", field="emailaddress1")) == 1
        final_dv = await dv_contact(stack, "ada@example.com")
        assert final_dv is not None
        assert final_dv["firstname"] == "Augusta"
        # Every committed batch is timed (the dashboard's batch panel; before, it stayed empty).
        [batches] = stack.metrics.sync_batch_seconds.collect()
        count = next(s.value for s in batches.samples if s.name == "cdc_sync_batch_seconds_count")
        assert count >= 2, batches.samples

    audits = await read_topic(kafka_settings, "audit")
    assert any(a.get("action") == "create" for a in audits), audits


async def test_same_email_created_on_both_sides_at_once_becomes_one_pair(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        await asyncio.gather(
            stack.hs_create("contacts", {"email": "twin@example.com", "firstname": "Hub"}),
            stack.dv_create("contact", {"emailaddress1": "TWIN@example.com", "lastname": "Verse"}),
        )

        async def linked() -> bool:
            hs = await hs_contact(stack, "twin@example.com")
            dv = await dv_contact(stack, "twin@example.com")
            return bool(hs and dv and hs.get("lastname") == "Verse" and dv.get("firstname") == "Hub")

        await eventually(linked, what="one pair holding both sides' values")
        await quiet(stack)
        assert len(by_email(await stack.dv_all("contact"), "twin@example.com", field="emailaddress1")) == 1
        hs_rows = [
            r for r in await stack.hs_all("contacts") if r["properties"].get("email") == "twin@example.com"
        ]
        assert len(hs_rows) == 1


async def test_unlinked_accounts_find_their_companies_whatever_the_case_of_their_names(
    kafka_settings: Any,
) -> None:
    """Accounts new to the sync whose names match existing HubSpot companies (bar case and spacing) link
    to them: the name lookup of several names is one search with ``IN``, whose values HubSpot wants
    lowercase (D-SRCH). No company is created twice."""
    async with running_stack(kafka_settings, small_config()) as stack:
        await stack.stop_sync()  # the accounts reach the sync together, so one lookup asks for all names
        seeded = await stack.hs.post(
            "/_admin/seed",  # HubSpot records from before the sync existed: no webhook
            json={"companies": [{"name": "Acme Corp"}, {"name": "Globex Industries"}, {"name": "Initech"}]},
        )
        acme, globex, initech = seeded.json()["companies"]
        cities = {"ACME  corp": "Leeds", "globex INDUSTRIES": "York", "INITECH": "Hull"}
        for name, city in cities.items():
            await stack.dv_create("account", {"name": name, "address1_city": city})
        await asyncio.sleep(1.5)  # the poller has put them on Kafka
        await stack.start_sync()

        async def linked() -> dict[str, str] | None:
            companies = {c["id"]: c["properties"] for c in await stack.hs_all("companies")}
            found = {i: str(companies.get(i, {}).get("city")) for i in (acme, globex, initech)}
            return found if set(found.values()) == set(cities.values()) else None

        assert await eventually(linked, what="each account's city on its company") == {
            acme: "Leeds",
            globex: "York",
            initech: "Hull",
        }
        await quiet(stack)
        assert len(await stack.hs_all("companies")) == 3


@pytest.mark.parametrize(
    ("policy", "winner"),
    [
        (ConflictPolicy.STEP_ORDER, "hubspot"),
        (ConflictPolicy.DYNAMICS, "dataverse"),
    ],
)
async def test_a_field_edited_on_both_sides_resolves_by_the_policy(
    kafka_settings: Any, policy: ConflictPolicy, winner: str
) -> None:
    async with running_stack(kafka_settings, small_config(conflict=str(policy))) as stack:
        hs_id = await stack.hs_create("contacts", {"email": "both@example.com", "city": "Leeds"})
        row = await eventually(lambda: dv_contact(stack, "both@example.com"), what="first sync")
        await quiet(stack)
        # Pause the flow out of Dataverse by editing both within one poll interval.
        await asyncio.gather(
            stack.hs_update("contacts", hs_id, {"city": "York"}),
            stack.dv_update("contact", row["contactid"], {"address1_city": "Bath"}),
        )
        expected = "York" if winner == "hubspot" else "Bath"

        async def agreed() -> bool:
            hs = await hs_contact(stack, "both@example.com")
            dv = await dv_contact(stack, "both@example.com")
            return bool(hs and dv and hs.get("city") == expected and dv.get("address1_city") == expected)

        await eventually(agreed, what=f"both sides holding {expected}")
        await quiet(stack)
        hs = await hs_contact(stack, "both@example.com")
        assert hs is not None
        assert hs["city"] == expected


def write_calls(calls: dict[str, Any]) -> dict[str, int]:
    """API calls that change data, per endpoint (reads and searches left out)."""
    out: dict[str, int] = {}
    for system, snapshot in calls.items():
        for endpoint, n in snapshot["by_endpoint"].items():
            method = endpoint.split(" ", 1)[0]
            reading = "/batch/read" in endpoint or "/search" in endpoint or method == "GET"
            if not reading and not endpoint.startswith("POST /oauth") and "token" not in endpoint:
                out[f"{system} {endpoint}"] = n
    return out


async def test_replaying_every_change_after_a_completed_sync_writes_nothing(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        company = await stack.hs_create("companies", {"name": "Replay Ltd", "city": "Hull"})
        for n in range(5):
            contact = await stack.hs_create("contacts", {"email": f"r{n}@example.com", "firstname": f"R{n}"})
            await stack.hs_associate("contacts", contact, "companies", company)
        await stack.dv_create("contact", {"emailaddress1": "dv-only@example.com", "lastname": "Only"})

        async def synced() -> bool:
            rows = await stack.dv_all("contact")
            return sum(1 for r in rows if (r.get("emailaddress1") or "").startswith("r")) == 5

        await eventually(synced, what="five contacts in Dataverse")
        await eventually(
            lambda: hs_contact(stack, "dv-only@example.com"), what="the Dataverse contact in HubSpot"
        )
        await quiet(stack)
        await stack.stop_sync()
        await stack.dv.delete("/_admin/calls")
        await stack.hs.delete("/_admin/calls")

        # A new consumer group reads every change topic from the beginning: a full replay.
        replay = Metrics(CollectorRegistry())
        await stack.start_sync(group_prefix=f"{kafka_settings.topic_prefix}replay-", metrics=replay)
        await eventually(lambda: _routed_all(replay), what="the replay to reach the end", within=30)
        await asyncio.sleep(3.0)
        written = write_calls(await stack.calls())
        assert written == {}, written
        assert _sum(replay.sync_writes) == 0


async def _routed_all(metrics: Metrics) -> bool:
    return _sum(metrics.sync_routed) > 0


def _sum(counter: Any) -> float:
    return float(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))


async def test_a_contact_whose_company_syncs_later_gets_its_parent_account(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        # The company is created in HubSpot with the contact, but its name is empty: it cannot sync yet.
        company = await stack.hs_create("companies", {"city": "Derby"})
        contact = await stack.hs_create("contacts", {"email": "late@example.com", "firstname": "Late"})
        await stack.hs_associate("contacts", contact, "companies", company)
        row = await eventually(lambda: dv_contact(stack, "late@example.com"), what="the contact in Dataverse")
        assert row.get("_parentcustomerid_value") in (None, "")
        # Now the company gets a name, syncs, and the contact's parent account follows.
        await stack.hs_update("companies", company, {"name": "Late Arrivals plc"})

        async def parented() -> str | None:
            found = await dv_contact(stack, "late@example.com")
            return found.get("_parentcustomerid_value") if found else None

        account_id = await eventually(parented, what="the contact's parent account", within=30)
        accounts = [a for a in await stack.dv_all("account") if a["accountid"] == account_id]
        assert accounts
        assert accounts[0]["name"] == "Late Arrivals plc"


async def test_a_poison_event_goes_to_dead_letters_and_the_partition_keeps_moving(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        catalog = TopicCatalog.from_settings(kafka_settings)
        producer = make_producer(kafka_settings)
        await producer.start()
        try:
            await producer.send_and_wait(
                catalog.name(TopicRole.CHANGES_HUBSPOT), key=b"hubspot/1/contact/1", value=b"{not json"
            )
        finally:
            await producer.stop()
        await stack.hs_create("contacts", {"email": "after@example.com", "firstname": "After"})
        await eventually(lambda: dv_contact(stack, "after@example.com"), what="the next change to sync")
    letters = await read_topic(kafka_settings, TopicRole.DEADLETTER)
    assert any("not JSON" in letter["error"] for letter in letters), letters


async def test_no_ping_pong_after_a_thousand_random_edits_on_both_sides(kafka_settings: Any) -> None:
    rng = random.Random(7)  # noqa: S311 -- reproducible edits, not secrets
    pairs = 20
    edits = 1000
    async with running_stack(kafka_settings, small_config()) as stack:
        hs_ids = [
            await stack.hs_create("contacts", {"email": f"pp{n}@example.com", "firstname": f"F{n}"})
            for n in range(pairs)
        ]

        async def all_linked() -> list[dict[str, Any]] | None:
            rows = [
                r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").startswith("pp")
            ]
            return rows if len(rows) == pairs else None

        dv_rows = await eventually(all_linked, what="every contact in Dataverse", within=60)
        dv_ids = {r["emailaddress1"]: r["contactid"] for r in dv_rows}
        fields = [("firstname", "firstname"), ("lastname", "lastname"), ("city", "address1_city")]

        async def edit(n: int) -> None:
            k = rng.randrange(pairs)
            hs_field, dv_field = rng.choice(fields)
            value = f"v{n}"
            if rng.random() < 0.5:
                await stack.hs_update("contacts", hs_ids[k], {hs_field: value})
            else:
                await stack.dv_update("contact", dv_ids[f"pp{k}@example.com"], {dv_field: value})

        for start in range(0, edits, 20):
            await asyncio.gather(*(edit(n) for n in range(start, start + 20)))

        writes = await quiet(stack, for_s=4.0, within=120)
        await asyncio.sleep(3.0)
        assert stack.sync_writes() == writes, "writes continued after the edits stopped (ping-pong)"
        hs_rows = {r["properties"]["email"]: r["properties"] for r in await stack.hs_all("contacts")}
        mismatched = []
        for row in await stack.dv_all("contact"):
            email = row.get("emailaddress1") or ""
            if not email.startswith("pp"):
                continue
            hs = hs_rows[email]
            mismatched += [
                (email, hs_field, hs.get(hs_field), row.get(dv_field))
                for hs_field, dv_field in fields
                if (hs.get(hs_field) or None) != (row.get(dv_field) or None)
            ]
        assert mismatched == []


async def test_cdc_replay_of_the_route_group_rereads_from_time_and_writes_nothing(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        started = datetime.now(UTC)
        for n in range(4):
            await stack.hs_create("contacts", {"email": f"rp{n}@example.com", "firstname": f"P{n}"})

        async def synced() -> bool:
            rows = await stack.dv_all("contact")
            return sum(1 for r in rows if (r.get("emailaddress1") or "").startswith("rp")) == 4

        await eventually(synced, what="four contacts in Dataverse")
        await quiet(stack)
        await stack.stop_sync()  # replay refuses while the group has live members
        plan = await replay(stack.settings, "sync-route", since=started - timedelta(seconds=5))
        assert plan.committed
        assert plan.to_read >= 4
        await stack.hs.delete("/_admin/calls")
        await stack.dv.delete("/_admin/calls")
        replayed = Metrics(CollectorRegistry())
        await stack.start_sync(metrics=replayed)  # the same groups, from the reset offsets
        # to_read counts offsets, transaction markers included: an upper bound of the events re-read.
        await eventually(lambda: _routed_at_least(replayed, 4), what="the replayed events routed")
        await asyncio.sleep(3.0)
        assert write_calls(await stack.calls()) == {}
        assert _sum(replayed.sync_writes) == 0


async def _routed_at_least(metrics: Metrics, count: int) -> bool:
    return _sum(metrics.sync_routed) >= count
