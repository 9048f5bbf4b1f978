"""Following published change events through the sync: have both consumer groups taken them, and what
did the sync write for them (audit records naming their event ids)?

Exact offsets, never "the end of the topic": the router must commit past the events themselves, then the
appliers past the work items the router made of them (found by their event ids from where the work topic
ended before the events were published), so later traffic never makes a caller wait longer, and the
transaction markers at a topic's end never make it wait for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime

from aiokafka import TopicPartition
from aiokafka.structs import RecordMetadata

from cdc.ops._kafka import Raw, committed_offsets, known_groups, open_reader, partitions_of, scan
from cdc.settings import Settings
from streams.admin import open_admin
from streams.audit import AUDIT_CODEC, AuditRecord
from streams.codec import Position, SchemaError
from streams.topics import TopicCatalog, TopicRole
from streams.work import WORK_CODEC

__all__ = ["taken", "work_ends", "written"]

POLL_S = 0.25


async def work_ends(settings: Settings) -> dict[TopicPartition, int]:
    """Where the work topic ends now: take it before publishing, for :func:`taken`."""
    return await _ends(settings, TopicCatalog.from_settings(settings.kafka).name(TopicRole.WORK))


async def _ends(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    async with open_admin(settings.kafka) as admin:
        partitions = await partitions_of(admin, [topic])
    async with open_reader(settings.kafka) as reader:
        ends: dict[TopicPartition, int] = await reader.end_offsets(partitions)
    return ends


async def _passed(settings: Settings, group: str, last: dict[TopicPartition, int], deadline: float) -> bool:
    """Wait until ``group`` committed past each partition's ``last`` offset; False at the deadline."""
    while True:
        async with open_admin(settings.kafka) as admin:
            committed = await committed_offsets(admin, group)
        if all(committed.get(tp, 0) > offset for tp, offset in last.items()):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)


async def _routed(
    settings: Settings, start: dict[TopicPartition, int], ids: set[str]
) -> dict[TopicPartition, int]:
    """Where the router put the work items of the events ``ids`` (read from ``start`` to the end)."""
    found: dict[TopicPartition, int] = {}
    async with open_reader(settings.kafka) as reader:
        reader.assign(list(start))
        for tp, offset in start.items():
            reader.seek(tp, offset)
        ends = await reader.end_offsets(list(start))
        while [tp for tp, end in ends.items() if await reader.position(tp) < end]:
            batches = await reader.getmany(timeout_ms=int(POLL_S * 1000))
            if not batches:
                break  # only transaction markers are left
            for tp, messages in batches.items():
                for m in messages:
                    try:
                        item = WORK_CODEC.decode(m.value, Position(m.topic, m.partition, m.offset))
                    except SchemaError:
                        continue
                    if item.change.source_event_id in ids:
                        found[tp] = max(found.get(tp, -1), m.offset)
    return found


async def taken(
    settings: Settings,
    landed: Sequence[RecordMetadata],
    ids: set[str],
    work: dict[TopicPartition, int],
    wait_s: float,
) -> bool:
    """Has the sync taken the published events: the router committed past them, then the appliers past the
    work items it made of them (exact offsets, so later traffic never makes it wait longer)?"""
    deadline = time.monotonic() + wait_s
    groups = known_groups(settings)
    published: dict[TopicPartition, int] = {}
    for meta in landed:
        tp = TopicPartition(meta.topic, meta.partition)
        published[tp] = max(published.get(tp, -1), meta.offset)
    if not await _passed(settings, groups["sync-route"], published, deadline):
        return False
    return await _passed(settings, groups["sync-apply"], await _routed(settings, work, ids), deadline)


async def written(settings: Settings, event_ids: set[str], since: datetime) -> list[AuditRecord]:
    found: list[AuditRecord] = []

    def take(message: Raw) -> None:
        try:
            record = AUDIT_CODEC.decode(
                message.value, Position(message.topic, message.partition, message.offset)
            )
        except SchemaError:
            return
        if event_ids & set(record.source_event_ids):
            found.append(record)

    await scan(
        settings.kafka, TopicCatalog.from_settings(settings.kafka).name(TopicRole.AUDIT), take, since=since
    )
    return sorted(found, key=lambda r: r.at)
