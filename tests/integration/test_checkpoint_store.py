"""Events and their checkpoint commit together; a second writer for the same table fences the first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.admin import ensure_topics, open_admin
from streams.checkpoint_store import TransactionalChangeWriter, WriterFencedError, read_checkpoints
from streams.checkpoints import Checkpoint, CursorKind
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import SourceSystem
from streams.topics import TopicCatalog, TopicRole
from tests.kafka_reading import read_changes

pytestmark = pytest.mark.kafka
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def row_event(n: int) -> ChangeEvent:
    return ChangeEvent(
        source=SourceSystem.DATAVERSE, tenant="org", object_type="contact", object_id=f"guid-{n}",
        operation=Operation.UPSERT, origin=Origin.CHANGE_TRACKING, record={"firstname": f"n{n}"},
        occurred_at=NOW, received_at=NOW,
    )  # fmt: skip


def checkpoint(cursor: str) -> Checkpoint:
    return Checkpoint(
        source=SourceSystem.DATAVERSE, tenant="org", object_type="contact", kind=CursorKind.DELTA_LINK,
        cursor=cursor, updated_at=NOW,
    )  # fmt: skip


async def test_events_and_checkpoint_are_committed_together(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    writer = TransactionalChangeWriter(kafka_settings, f"poll-{unique}")
    await writer.start()
    try:
        await writer.commit([row_event(1), row_event(2)], checkpoint("delta-1"))
        await writer.commit([row_event(3)], checkpoint("delta-2"))
    finally:
        await writer.stop()

    saved = await read_checkpoints(kafka_settings)
    assert {key: cp.cursor for key, cp in saved.items()} == {"checkpoint/dataverse/org/contact": "delta-2"}
    events = await read_changes(kafka_settings, TopicRole.CHANGES_DATAVERSE)
    assert sorted(e.object_id for e in events) == ["guid-1", "guid-2", "guid-3"]


@pytest.mark.parametrize(
    "stale_events",
    [1, 300],
    ids=["fence-at-commit", "fence-while-sending"],  # 300 sends outlast the fence's arrival in the sender
)
async def test_a_second_writer_for_the_same_table_fences_the_first(
    kafka_settings: KafkaSettings, unique: str, stale_events: int
) -> None:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    old, new = (TransactionalChangeWriter(kafka_settings, f"poll-{unique}") for _ in range(2))
    await old.start()
    await new.start()
    try:
        await new.commit([row_event(1)], checkpoint("from-new"))
        with pytest.raises(WriterFencedError):
            await old.commit([row_event(n) for n in range(2, 2 + stale_events)], checkpoint("from-old"))
    finally:
        await old.stop()
        await new.stop()
    assert (await read_checkpoints(kafka_settings))["checkpoint/dataverse/org/contact"].cursor == "from-new"
    assert [e.object_id for e in await read_changes(kafka_settings, TopicRole.CHANGES_DATAVERSE)] == [
        "guid-1"
    ]
