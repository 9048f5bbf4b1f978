"""Pausing and resuming the sync, end to end: sandbox CRMs, a real Kafka, `cdc sync` (in process, plus a
second replica as a real process), and the real `cdc pause` / `cdc resume` / `cdc paused` / `cdc status`
commands as an operator runs them.

What a user checks: while paused, an edit in HubSpot is not written to Dataverse (the sandboxes count
every data-changing call, whichever replica sent it); after resume, it is. One step paused: its records
wait while another step's flow; resumed, they arrive.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import orjson
import pytest

from streams.admin import ensure_topics, open_admin
from streams.topics import TopicCatalog
from tests.integration.sync_stack import Stack, eventually, quiet, role_env, running_stack, small_config
from tests.kafka_reading import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HELD_S = 4.0
"""How long a test watches that nothing is written while paused."""


def cdc(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdc", *args],
        capture_output=True,
        text=True,
        env=role_env(stack.settings),
        timeout=60,
        check=False,
    )


async def run_cdc(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cdc, stack, *args)


async def dv_row(stack: Stack, table: str, field: str, value: str) -> dict[str, Any] | None:
    rows = [r for r in await stack.dv_all(table) if (r.get(field) or "").lower() == value.lower()]
    return rows[0] if rows else None


async def test_pausing_everything_holds_every_write_until_resumed_on_both_replicas(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        await stack.add_replica()  # a second `cdc sync`, a real process in the same groups
        await stack.hs_create(
            "contacts", {"email": "warm@example.com", "firstname": "Warm", "lastname": "Up"}
        )
        await eventually(lambda: dv_row(stack, "contact", "emailaddress1", "warm@example.com"), within=60)
        await quiet(stack)

        paused = await run_cdc(stack, "pause", "--reason", "CRM maintenance", "--by", "ana")
        assert paused.returncode == 0, paused.stderr
        assert "paused everything" in paused.stdout
        await asyncio.sleep(1.0)  # every replica obeys within a second
        before = await stack.write_calls()
        emails = [f"held{n}@example.com" for n in range(6)]  # spread over the partitions of both replicas
        for email in emails:
            await stack.hs_create("contacts", {"email": email, "firstname": "Held", "lastname": "Back"})
        await asyncio.sleep(HELD_S)
        assert await stack.write_calls() == before, "a replica wrote to a CRM while everything was paused"
        assert [e for e in emails if await dv_row(stack, "contact", "emailaddress1", e)] == []

        listed = await run_cdc(stack, "paused")
        assert listed.stdout.startswith("paused: everything, by ana since "), listed.stdout
        assert "CRM maintenance" in listed.stdout
        status = await run_cdc(stack, "status", "--json")
        report = orjson.loads(status.stdout)
        assert report["paused"]["*"]["by"] == "ana"
        assert any(w["topic"].endswith("changes.hubspot") and w["age_s"] > 0 for w in report["waiting"]), (
            report
        )

        again = await run_cdc(stack, "pause")
        assert "already" in again.stdout  # nothing written twice
        resumed = await run_cdc(stack, "resume", "--by", "ana")
        assert resumed.returncode == 0, resumed.stderr

        async def all_landed() -> bool:
            return all([await dv_row(stack, "contact", "emailaddress1", e) for e in emails])

        await eventually(all_landed, within=60, what="the held contacts in Dataverse after resume")
        await stack.stop_replicas()

    audit = [a for a in await read_topic(kafka_settings, "audit") if a.get("by") == "ana"]
    assert [(a["action"], a["target"], a["by"]) for a in audit] == [
        ("pause", "*", "ana"),
        ("resume", "*", "ana"),
    ]


async def test_pausing_one_step_parks_its_records_while_the_others_flow(kafka_settings: Any) -> None:
    """Two replicas: whichever owns the contact's partition parks it, the other applies the company."""
    async with running_stack(kafka_settings, small_config()) as stack:
        await stack.add_replica()
        paused = await run_cdc(stack, "pause", "contacts_to_contacts", "--reason", "mapping review")
        assert paused.returncode == 0, paused.stderr
        assert "contact~contact" in paused.stdout
        await asyncio.sleep(1.0)
        gauge = stack.metrics.sync_operator_paused.labels(step="contacts_to_contacts")
        assert gauge._value.get() == 1

        await stack.hs_create(
            "contacts", {"email": "parked@example.com", "firstname": "Par", "lastname": "Ked"}
        )
        await stack.hs_create("companies", {"name": "Flowing Ltd", "city": "Leeds"})
        await eventually(
            lambda: dv_row(stack, "account", "name", "Flowing Ltd"), within=60, what="the company"
        )
        await asyncio.sleep(HELD_S)
        assert await dv_row(stack, "contact", "emailaddress1", "parked@example.com") is None
        parked = await read_topic(kafka_settings, "sync.parked")
        assert parked, "nothing parked"
        assert {p["pair"] for p in parked} == {"contact~contact"}, parked  # the company went through

        # A newer edit of the parked contact arrives while it waits: it parks behind the first.
        hs_id = next(
            c["id"]
            for c in await stack.hs_all("contacts")
            if c["properties"].get("email") == "parked@example.com"
        )
        await stack.hs_update("contacts", hs_id, {"lastname": "Newer"})
        await asyncio.sleep(1.5)
        assert await dv_row(stack, "contact", "emailaddress1", "parked@example.com") is None

        resumed = await run_cdc(stack, "resume", "contacts_to_contacts")
        assert resumed.returncode == 0, resumed.stderr

        async def newest() -> dict[str, Any] | None:
            row = await dv_row(stack, "contact", "emailaddress1", "parked@example.com")
            return row if row and row.get("lastname") == "Newer" else None

        await eventually(newest, within=60, what="the parked contact, with its newer edit, after resume")
        assert gauge._value.get() == 0
        await quiet(stack)
        assert (
            len([r for r in await stack.dv_all("contact") if r.get("emailaddress1") == "parked@example.com"])
            == 1
        )


async def test_pausing_an_unknown_step_names_the_known_ones_and_writes_nothing(kafka_settings: Any) -> None:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    env = {
        **os.environ,
        "CDC_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CDC_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cdc", "pause", "contacts"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "unknown step 'contacts'" in refused.stderr
    assert "s2_contacts_to_contacts" in refused.stderr  # the default configuration's steps
    assert await read_topic(kafka_settings, "control") == []
    assert await read_topic(kafka_settings, "audit") == []
