"""Pollers' cursors: read back from the compacted `checkpoints` topic, moved atomically with their events.

Guarantee 1 for pollers: a cursor moves only with the events it covers. :class:`TransactionalChangeWriter`
puts a batch of change events and the checkpoint after them into one Kafka transaction, so a reader with
``read_committed`` sees both or neither; a crash before the commit re-reads from the old cursor (a
duplicate at worst, never a loss). Its transactional id is per poller and table: a second poller for the
same table fences the first (its next commit fails with ``ProducerFenced``), so two pollers never move one
cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition

from streams.checkpoints import CHECKPOINT_CODEC, Checkpoint
from streams.clients import make_consumer, make_producer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC, ChangeEvent
from streams.keys import SourceSystem
from streams.topics import TopicCatalog, TopicRole


async def read_checkpoints(kafka: KafkaSettings) -> dict[str, Checkpoint]:
    """The newest checkpoint per key (``checkpoint/<system>/<tenant>/<object>``); tombstones remove keys."""
    spec = TopicCatalog.from_settings(kafka)[TopicRole.CHECKPOINTS]
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        latest: dict[str, Checkpoint] = {}
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                for messages in (await consumer.getmany(tp, timeout_ms=2_000)).values():
                    for message in messages:
                        key = message.key.decode()
                        if message.value is None:
                            latest.pop(key, None)
                            continue
                        where = Position(message.topic, message.partition, message.offset)
                        latest[key] = CHECKPOINT_CODEC.decode(message.value, where)
        return latest
    finally:
        await consumer.stop()


class TransactionalChangeWriter:
    """Change events plus the checkpoint that covers them, committed as one Kafka transaction."""

    def __init__(self, kafka: KafkaSettings, transactional_id: str) -> None:
        catalog = TopicCatalog.from_settings(kafka)
        self._changes = {
            SourceSystem.HUBSPOT: catalog.name(TopicRole.CHANGES_HUBSPOT),
            SourceSystem.DATAVERSE: catalog.name(TopicRole.CHANGES_DATAVERSE),
        }
        self._checkpoints = catalog.name(TopicRole.CHECKPOINTS)
        self._producer: Any = make_producer(kafka, transactional_id=transactional_id)
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        """Close; an open transaction is aborted by the broker. Idempotent."""
        if not self._started:
            return
        self._started = False
        await self._producer.stop()

    async def commit(self, events: Sequence[ChangeEvent], checkpoint: Checkpoint) -> None:
        """Publish ``events`` and ``checkpoint`` atomically; returns once the transaction is committed."""
        async with self._producer.transaction():
            for event in events:
                await self._producer.send(
                    self._changes[event.source],
                    CHANGE_CODEC.encode(event),
                    key=event.key.encode(),
                    headers=[CHANGE_CODEC.header],
                )
            await self._producer.send(
                self._checkpoints,
                CHECKPOINT_CODEC.encode(checkpoint),
                key=checkpoint.key.encode(),
                headers=[CHECKPOINT_CODEC.header],
            )
