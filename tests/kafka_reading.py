"""Reading a whole topic back in tests: what a user would check after the daemon has run."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import TopicPartition

from streams.clients import make_consumer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC, ChangeEvent
from streams.topics import TopicCatalog, TopicRole


async def read_changes(
    kafka: KafkaSettings, role: TopicRole = TopicRole.CHANGES_HUBSPOT
) -> list[ChangeEvent]:
    """Every change event on the catalog's topic for ``role``, from the beginning to the current end."""
    spec = TopicCatalog.from_settings(kafka)[role]
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events: list[ChangeEvent] = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                for messages in (await consumer.getmany(tp, timeout_ms=2_000)).values():
                    events.extend(
                        CHANGE_CODEC.decode(m.value, Position(m.topic, m.partition, m.offset))
                        for m in messages
                    )
        return events
    finally:
        await consumer.stop()


async def read_topic(kafka: KafkaSettings, role: TopicRole | str) -> list[dict[str, Any]]:
    """Every JSON value on the catalog's topic for ``role`` (no tombstones), oldest first."""
    spec = TopicCatalog.from_settings(kafka)[TopicRole(role)]
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[dict[str, Any]] = []
        for tp in partitions:
            idle = 0
            while await consumer.position(tp) < ends[tp] and idle < 3:
                batch = await consumer.getmany(tp, timeout_ms=700)
                idle = 0 if batch else idle + 1
                values.extend(
                    orjson.loads(m.value) for ms in batch.values() for m in ms if m.value is not None
                )
        return values
    finally:
        await consumer.stop()
