"""The links topic really compacts: only the newest value per key survives, and tombstones delete keys."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from streams.admin import open_admin
from streams.clients import make_consumer, make_producer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.keys import SourceSystem
from streams.link_store import LinkIndex
from streams.links import LINK_CODEC, Link, LinkSide, link_id_for, link_id_from_key
from streams.topics import TopicCatalog, TopicRole

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FAST_COMPACTION = {
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "100",
    "min.compaction.lag.ms": "0",
}


def make_link(n: int, revision: int) -> Link:
    now = datetime.now(UTC)
    hubspot = LinkSide(system=SourceSystem.HUBSPOT, tenant="42", object_type="contact", object_id=str(n))
    dataverse = LinkSide(
        system=SourceSystem.DATAVERSE,
        tenant="org.crm.dynamics.com",
        object_type="contact",
        object_id=f"guid-{n}",
    )
    return Link(
        link_id=link_id_for(hubspot.ref, dataverse.ref),
        hubspot=hubspot,
        dataverse=dataverse,
        revision=revision,
        created_at=now,
        updated_at=now,
    )


async def read_all(kafka: KafkaSettings, topic: str) -> list[tuple[str, bytes | None, int]]:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        records: list[tuple[str, bytes | None, int]] = []
        while await consumer.position(partition) < end:
            for messages in (await consumer.getmany(partition, timeout_ms=2_000)).values():
                records.extend((m.key.decode(), m.value, m.offset) for m in messages)
        return records
    finally:
        await consumer.stop()


async def test_links_topic_keeps_only_the_newest_value_per_key_and_drops_tombstoned_keys(
    kafka_settings: KafkaSettings,
) -> None:
    spec = TopicCatalog.from_settings(kafka_settings)[TopicRole.LINKS]
    assert spec.config["cleanup.policy"] == "compact"
    async with open_admin(kafka_settings) as admin:
        await admin.create_topics(
            [NewTopic(spec.name, 1, 1, topic_configs={**spec.config, **FAST_COMPACTION})]
        )

    producer = make_producer(kafka_settings, linger_ms=0)
    await producer.start()
    try:
        for revision in (1, 2, 3):
            for n in range(5):
                link = make_link(n, revision)
                await producer.send_and_wait(spec.name, LINK_CODEC.encode(link), key=link.key.encode())
        deleted = make_link(4, 1)
        await producer.send_and_wait(spec.name, None, key=deleted.key.encode())
        written = 16

        # The active segment is never cleaned: wait past segment.ms and append, so it rolls, until the
        # cleaner has removed every overwritten value and the tombstone.
        deadline = time.monotonic() + 60
        while True:
            await asyncio.sleep(0.3)
            await producer.send_and_wait(spec.name, b"{}", key=b"filler")
            records = [r for r in await read_all(kafka_settings, spec.name) if r[0] != "filler"]
            if len(records) == 4 or time.monotonic() > deadline:
                break
    finally:
        await producer.stop()

    assert len(records) == 4, f"compaction did not finish in 60 s: {len(records)} of {written} records left"
    index = LinkIndex()
    for key, value, offset in records:
        index.apply(link_id_from_key(key), LINK_CODEC.decode(value, Position(spec.name, 0, offset)))
    assert sorted(link.hubspot.object_id for link in index) == ["0", "1", "2", "3"]
    assert all(link.revision == 3 for link in index)
    # The rebuilt view finds a pair by either side's record.
    found = index.find(make_link(2, 3).dataverse.ref)
    assert found is not None
    assert found.hubspot.object_id == "2"
    assert index.find(make_link(4, 1).hubspot.ref) is None
