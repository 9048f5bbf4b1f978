"""A change event goes through a real broker and comes back whole, key and headers included."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.admin import NewTopic

from streams.admin import open_admin
from streams.clients import make_consumer, make_producer
from streams.codec import Position
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC, ChangeEvent, Operation, Origin
from streams.keys import SourceSystem
from streams.topics import TopicCatalog, TopicRole

pytestmark = pytest.mark.kafka


def sample_event(object_id: str) -> ChangeEvent:
    return ChangeEvent(
        source=SourceSystem.HUBSPOT,
        tenant="1234567",
        object_type="contact",
        object_id=object_id,
        operation=Operation.UPDATE,
        origin=Origin.WEBHOOK,
        changed_properties={"email": "ada@example.com", "hs_lead_status": None},
        source_event_id="4001",
        change_source="CRM_UI",
        occurred_at=datetime(2026, 11, 23, 9, 30, 0, 123000, tzinfo=UTC),
        received_at=datetime.now(UTC),
    )


async def test_change_event_round_trip_keeps_key_headers_and_values(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    topic = TopicCatalog.from_settings(kafka_settings).name(TopicRole.CHANGES_HUBSPOT)
    async with open_admin(kafka_settings) as admin:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    events = [sample_event(str(2**40 + n)) for n in range(5)]

    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                topic,
                CHANGE_CODEC.encode(event),
                key=event.key.encode(),
                headers=[CHANGE_CODEC.header, ("trace", b"abc")],
            )
    finally:
        await producer.stop()

    consumer = make_consumer(kafka_settings, topic, group_id=f"g{unique}")
    await consumer.start()
    try:
        received: list[Any] = []
        while len(received) < len(events):
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "no records arrived within 10 s"
            for messages in batch.values():
                received.extend(messages)
        await consumer.commit()
    finally:
        await consumer.stop()

    by_key = {m.key.decode(): m for m in received}
    assert set(by_key) == {event.key for event in events}
    for event in events:
        message = by_key[event.key]
        assert dict(message.headers) == {"cdc-schema": b"change.v1", "trace": b"abc"}
        decoded = CHANGE_CODEC.decode(
            message.value, Position(message.topic, message.partition, message.offset)
        )
        assert decoded == event
        assert decoded.key == f"hubspot/1234567/contact/{event.object_id}"
