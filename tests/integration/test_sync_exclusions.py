"""End to end, as an admin works through excluded records: a HubSpot contact whose email two Dataverse
contacts share is refused (an ambiguous match, guarantee 2: never a guess, never a duplicate) and listed by
`cdc excluded list` with its email; once one duplicate is deleted in Dataverse, `cdc excluded retry KEY`
queues it again, it links to the one left, and it leaves the list. Bad input gets a usage error."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from cdc.exits import CliError, ExitCode
from cdc.ops.excluded import retry
from cdc.sandbox.runner import run_sandbox
from consumers.config import SyncConfig
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.events import Origin
from streams.exclusions import Exclusion, ExclusionReason
from streams.keys import RecordRef, SourceSystem
from streams.topics import TopicCatalog, TopicRole
from tests.integration.sync_stack import Stack, eventually, role_env, running_stack, small_config
from tests.kafka_reading import read_changes

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EMAIL = "dup@example.com"
HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE


def one_way_contacts() -> SyncConfig:
    """HubSpot -> Dataverse contacts only: the Dataverse duplicates stay where they are."""
    config = small_config()
    raw = config.model_dump(mode="json")
    for step in raw["steps"]:
        step["enabled"] = step["source"]["system"] == "hubspot" and step["source"]["object"] == "contact"
    return SyncConfig.model_validate(raw)


async def cdc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``cdc ARGS`` as an admin runs it, in a worker thread (the sandboxes serve on this loop)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cdc", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def listed(stack: Stack) -> list[dict[str, Any]]:
    done = await cdc(role_env(stack.settings), "excluded", "list", "--json")
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = orjson.loads(done.stdout)
    return found


def excluded_gauge(stack: Stack) -> float:
    return sum(s.value for m in stack.metrics.excluded_records.collect() for s in m.samples)


async def test_an_ambiguous_match_is_listed_then_retried_once_fixed(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, one_way_contacts()) as stack:
        first = await stack.dv_create("contact", {"emailaddress1": EMAIL, "lastname": "One"})
        await stack.dv_create("contact", {"emailaddress1": EMAIL.upper(), "lastname": "Two"})
        hs_id = await stack.hs_create("contacts", {"email": EMAIL, "firstname": "Dana", "lastname": "Dup"})
        key = f"hubspot/{stack.settings.hubspot.portal_id}/contact/{hs_id}"

        async def refused() -> list[dict[str, Any]] | None:
            return await listed(stack) or None

        [entry] = await eventually(refused, within=45.0, what="the contact listed as excluded")
        assert entry["key"] == key
        assert (entry["reason"], entry["step"]) == ("ambiguous_match", "contacts_to_contacts")
        assert entry["values"] == {"email": EMAIL}
        assert entry["detail"] == "2 candidates with this match key"
        assert excluded_gauge(stack) == 1
        rows = [r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").lower() == EMAIL]
        assert len(rows) == 2  # nothing created, nothing guessed
        assert all(r.get("firstname") in (None, "") for r in rows)

        table = await cdc(role_env(stack.settings), "excluded", "list", "--reason", "ambiguous_match")
        assert table.returncode == 0, table.stderr
        assert key in table.stdout
        assert "email='dup@example.com'" in table.stdout
        assert table.stdout.strip().endswith("1 record(s) excluded of 1")

        # The admin removes the duplicate in Dataverse, then retries the record.
        await stack.dv_delete("contact", first)
        retried = await cdc(role_env(stack.settings), "excluded", "retry", key)
        assert retried.returncode == 0, retried.stderr
        assert f"queued {key}" in retried.stdout

        async def synced() -> list[dict[str, Any]] | None:
            left = [
                r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").lower() == EMAIL
            ]
            return left if len(left) == 1 and left[0].get("firstname") == "Dana" else None

        [row] = await eventually(synced, within=45.0, what="the retried contact matched and updated")
        assert row["lastname"] == "Dup"

        async def cleared() -> bool:
            return await listed(stack) == []

        await eventually(cleared, what="the record gone from the excluded list")
        assert excluded_gauge(stack) == 0


async def test_bad_input_gets_a_usage_error(kafka_settings: KafkaSettings) -> None:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    env = {
        **os.environ,
        "CDC_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CDC_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    unknown = await cdc(env, "excluded", "retry", "hubspot/1/contact/404")
    assert unknown.returncode == 2
    assert "not excluded now: hubspot/1/contact/404" in unknown.stderr

    shown = await cdc(env, "excluded", "show", "hubspot/1/contact/404")
    assert shown.returncode == 2
    assert "not excluded now" in shown.stderr

    reason = await cdc(env, "excluded", "list", "--reason", "nonsense")
    assert reason.returncode == 2
    assert "unknown reason 'nonsense'" in reason.stderr
    assert "ambiguous_match" in reason.stderr  # the known ones are listed

    nothing = await cdc(env, "excluded", "retry")
    assert nothing.returncode == 2
    assert "name the records to retry" in nothing.stderr

    empty = await cdc(env, "excluded", "list")
    assert (empty.returncode, empty.stdout.strip()) == (0, "0 record(s) excluded")


def entry(ref: RecordRef) -> Exclusion:
    now = datetime.now(UTC)
    return Exclusion(
        step="s4_contacts_to_hubspot_contacts",
        reason=ExclusionReason.EMPTY_MATCH_KEY,
        record=ref,
        first_seen=now,
        last_seen=now,
    )


async def test_retry_reads_a_dataverse_row_and_reports_a_record_its_crm_no_longer_has(
    kafka_settings: KafkaSettings,
) -> None:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    async with run_sandbox(seed=43) as box:
        settings = box.daemon_settings(kafka_settings)
        context = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
        async with httpx.AsyncClient(base_url=box.info.dataverse.base_url, verify=context) as api:
            answer = await api.post(
                "/_admin/tables/contacts/rows", json={"rows": [{"emailaddress1": "", "lastname": "Nomail"}]}
            )
            assert answer.status_code == 201, answer.text
            [row_id] = [row["contactid"] for row in answer.json()["value"]]
        tenant = box.info.dataverse.base_url.split("://")[1]
        row = entry(RecordRef(system=DV, tenant=tenant, object_type="contact", object_id=row_id))
        portal = str(settings.hubspot.portal_id)
        gone = entry(RecordRef(system=HS, tenant=portal, object_type="contact", object_id="987654321"))

        report = await retry(settings, [row, gone])

        assert [e.key for e, _ in report.queued] == [row.key]
        assert report.gone == [gone]
        assert report.lines()[-1] == "1 record(s) queued for sync, 1 not found"
        [event] = await read_changes(kafka_settings, TopicRole.CHANGES_DATAVERSE)
        assert event.key == row.key
        assert (event.origin, event.source_event_type) == (Origin.RESYNC, "excluded_retry")
        assert event.record is not None
        assert event.record["lastname"] == "Nomail"
        assert await read_changes(kafka_settings, TopicRole.CHANGES_HUBSPOT) == []

        odd = entry(RecordRef(system=DV, tenant=tenant, object_type="contact", object_id="1) or (1"))
        with pytest.raises(CliError, match="not a Dataverse id") as refused:
            await retry(settings, [odd])
        assert refused.value.code is ExitCode.USAGE
