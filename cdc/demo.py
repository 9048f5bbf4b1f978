"""``cdc demo``: the product end to end on an embedded default.

What runs: a real local Apache Kafka, the topic catalog, the sandbox HubSpot and Dataverse (seeded with a
few hundred companies, contacts and opportunities), and `cdc ingest` receiving the sandbox's signed
webhooks. A "user" edits HubSpot records every second; each change is shown as it lands on Kafka, with the
time from the edit to the acknowledged event. The Dataverse poller and the sync engine join as they land.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from cdc.ingest.service import run_ingest
from cdc.sandbox.runner import Sandbox, run_sandbox
from streams.admin import ensure_topics, open_admin
from streams.clients import make_consumer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC
from streams.topics import TopicCatalog, TopicRole

Say = Callable[[str], None]
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie")
COMING = (
    "Dataverse change-tracking poller and HubSpot reconciler (cdc poll)",
    "sync: ordered sync steps, conflict rules, matching, links, batched idempotent writes to the other CRM",
    "operations: status, replay, dead letters, dashboards",
)


async def seed(box: Sandbox, size: int, say: Say) -> list[str]:
    """A few hundred records on both sides; returns the HubSpot contact ids the demo user edits."""
    rng = random.Random(7)  # noqa: S311 -- demo data, not secrets
    companies = [
        {"name": f"Company {n:03d}", "domain": f"company{n:03d}.example.com"} for n in range(size // 4)
    ]
    contacts = [
        {
            "email": f"person{n:03d}@example.com",
            "firstname": rng.choice(FIRST_NAMES),
            "lastname": f"Person{n:03d}",
        }
        for n in range(size)
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        seeded = await client.post(
            f"{box.info.hubspot.base_url}/_admin/seed", json={"companies": companies, "contacts": contacts}
        )
        seeded.raise_for_status()
        dataverse = f"{box.info.dataverse.base_url}/_admin/tables"
        verify = box.info.dataverse.ca_bundle
        async with httpx.AsyncClient(verify=_ssl(verify), timeout=30) as dv:
            for table, rows in (
                ("accounts", [{"name": f"Account {n:03d}"} for n in range(size // 4)]),
                (
                    "contacts",
                    [
                        {"emailaddress1": f"dv{n:03d}@example.com", "lastname": f"Dv{n:03d}"}
                        for n in range(size)
                    ],
                ),
                ("opportunities", [{"name": f"Opportunity {n:03d}"} for n in range(size // 4)]),
            ):
                (await dv.post(f"{dataverse}/{table}/rows", json={"rows": rows})).raise_for_status()
    ids: list[str] = seeded.json()["contacts"]
    say(
        f"seeded HubSpot with {len(companies)} companies and {len(contacts)} contacts, "
        f"Dataverse with {size // 4} accounts, {size} contacts and {size // 4} opportunities"
    )
    return ids


def _ssl(ca_bundle: str) -> Any:
    import ssl  # noqa: PLC0415

    return ssl.create_default_context(cafile=ca_bundle)


async def edit_forever(box: Sandbox, ids: list[str], edits: int | None) -> None:
    """The demo's "user": one HubSpot edit a second (``edits`` of them, or until cancelled)."""
    rng = random.Random(11)  # noqa: S311 -- demo data
    count = 0
    async with httpx.AsyncClient(base_url=box.info.hubspot.base_url, timeout=30) as client:
        while edits is None or count < edits:
            contact = rng.choice(ids)
            name = f"{rng.choice(FIRST_NAMES)} {count + 1}"  # always a new value: an equal one is no change
            await client.patch(
                f"/_admin/objects/contacts/{contact}", json={"properties": {"firstname": name}}
            )
            count += 1
            await asyncio.sleep(1.0)


async def show_changes(kafka: KafkaSettings, say: Say, expected: int | None) -> None:
    """Print every HubSpot change event as it arrives, with its latency from the edit."""
    topic = TopicCatalog.from_settings(kafka).name(TopicRole.CHANGES_HUBSPOT)
    consumer = make_consumer(kafka, topic, group_id=None, auto_offset_reset="latest")
    await consumer.start()
    seen = 0
    try:
        while expected is None or seen < expected:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                for message in messages:
                    where = Position(message.topic, message.partition, message.offset)
                    event = CHANGE_CODEC.decode(message.value, where)
                    latency = (datetime.now(UTC) - event.occurred_at).total_seconds() * 1000
                    change = (
                        ", ".join(f"{k}={v}" for k, v in event.changed_properties.items()) or event.operation
                    )
                    say(
                        f"HubSpot {event.object_type} {event.object_id}: {change} -> "
                        f"{where} in {latency:.0f} ms"
                    )
                    seen += 1
    finally:
        await consumer.stop()


async def run(kafka: KafkaSettings, say: Say, *, once: bool, stop: asyncio.Event) -> None:
    async with open_admin(kafka) as admin:
        report = await ensure_topics(admin, TopicCatalog.from_settings(kafka))
    say(
        f"topics: {len(report.created)} created, {len(report.existing)} already there ({kafka.topic_prefix}*)"
    )
    async with run_sandbox(seed=1) as box:
        say(f"sandbox HubSpot {box.info.hubspot.base_url}, Dataverse {box.info.dataverse.base_url}")
        settings = box.daemon_settings(kafka)
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        ingest_stop = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(run_ingest(settings, ingest_stop, on_listening=listening.set_result))
            webhook_url = await listening
            box.hubspot.set_webhook_url(webhook_url)
            say(f"cdc ingest receiving webhooks at {webhook_url}")
            say(f"metrics: {webhook_url.removesuffix('/webhooks/hubspot')}/metrics")
            ids = await seed(box, 200, say)
            edits = 5 if once else None
            watcher = tasks.create_task(show_changes(kafka, say, expected=edits))
            await asyncio.sleep(0.5)  # the watcher is subscribed before the first edit
            editor = tasks.create_task(edit_forever(box, ids, edits))
            say("a user now edits HubSpot contacts once a second; Ctrl-C stops everything")
            if once:
                try:
                    await asyncio.wait_for(asyncio.shield(watcher), 60)
                except TimeoutError:
                    say("warning: not every edit reached Kafka within 60 s; see the log above")
            else:
                await stop.wait()
            for task in (editor, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            ingest_stop.set()
    say("coming next in this demo, as the issues land:")
    for item in COMING:
        say(f"  - {item}")
