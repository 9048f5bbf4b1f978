"""``cdc demo``: the product end to end on an embedded default.

Today it runs what exists: a real local Kafka, the topic catalog, and a change event through it with its
latency. The sandbox CRMs, ingest and sync join it as they land (see the README's roadmap).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from streams.admin import ensure_topics, open_admin
from streams.clients import make_consumer, make_producer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC, ChangeEvent, Operation, Origin
from streams.keys import SourceSystem
from streams.topics import TopicCatalog, TopicRole

Say = Callable[[str], None]
ROUNDS = 20

COMING = (
    "sandbox HubSpot and Dataverse emulators (signed webhooks, change tracking, batch APIs)",
    "ingest: webhook receiver, HubSpot reconciler, Dataverse delta poller",
    "sync: ordered sync steps, conflict rules, matching, links, batched idempotent writes",
    "operations: Prometheus metrics URL, status, replay, dead letters",
)


def sample_change() -> ChangeEvent:
    now = datetime.now(UTC)
    return ChangeEvent(
        source=SourceSystem.HUBSPOT,
        tenant="demo-portal",
        object_type="contact",
        object_id="1001",
        operation=Operation.UPDATE,
        origin=Origin.WEBHOOK,
        changed_properties={"email": "ada.lovelace@example.com", "firstname": "Ada"},
        change_source="CRM_UI",
        occurred_at=now,
        received_at=now,
    )


async def publish_and_read_back(kafka: KafkaSettings, say: Say) -> float:
    """Ensure the catalog, publish one change event, read it back; the round trip in milliseconds."""
    catalog = TopicCatalog.from_settings(kafka)
    async with open_admin(kafka) as admin:
        report = await ensure_topics(admin, catalog)
    say(f"topics: {len(report.created)} created, {len(report.existing)} already there")
    for spec in catalog:
        say(f"  {spec.name:<28} {spec.partitions} partitions  {spec.config.get('cleanup.policy')}")

    topic = catalog.name(TopicRole.CHANGES_HUBSPOT)
    consumer = make_consumer(kafka, topic, group_id=None)  # reads every partition, commits nothing
    producer = make_producer(kafka, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        await consumer.seek_to_end()
        timings = [await _round_trip(producer, consumer, topic, sample_change()) for _ in range(ROUNDS)]
    finally:
        await producer.stop()
        await consumer.stop()
    warm = sorted(timings[1:])
    say(
        f"{ROUNDS} change events through {topic} and back: first {timings[0]:.1f} ms, "
        f"then p50 {warm[len(warm) // 2]:.1f} ms, max {warm[-1]:.1f} ms"
    )
    return warm[len(warm) // 2]


async def _round_trip(producer: Any, consumer: Any, topic: str, event: ChangeEvent) -> float:
    started = time.perf_counter()
    await producer.send_and_wait(topic, CHANGE_CODEC.encode(event), key=event.key.encode())
    while True:
        batch = await consumer.getmany(timeout_ms=5_000)
        if not batch:
            raise TimeoutError(f"a demo event did not come back from {topic} within 5 s")
        for messages in batch.values():
            for message in messages:
                where = Position(message.topic, message.partition, message.offset)
                if CHANGE_CODEC.decode(message.value, where) == event:
                    return (time.perf_counter() - started) * 1000


def coming(say: Say) -> None:
    say("coming next in this demo, as the issues land:")
    for item in COMING:
        say(f"  - {item}")


def run(kafka: KafkaSettings, say: Say) -> float:
    return asyncio.run(publish_and_read_back(kafka, say))
