"""A pause of everything that the replica takes in while its apply loop reads a batch holds that batch: it
goes back to Kafka and is applied only after the resume. A real broker and the real apply loop; the read
is wrapped so that the pause lands exactly while it waits, rather than left to timing.

The loop asked about the pause only before it read, and a read waits up to `FIRST_POLL_MS` (200 ms) for
its first record; so a change made right after `cdc pause` (or the admin page's Pause) returned could still
be applied while everything was paused (the admin page's browser test, in CI on 2026-12-07).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

import streams.control
from consumers.applier import Applier
from consumers.apply_loop import ApplyLoop
from consumers.ports import Record, WriteOp, WriteOutcome
from streams.admin import ensure_topics, open_admin
from streams.batching import collect
from streams.clients import make_producer, running
from streams.config import KafkaSettings
from streams.control import EVERYTHING, Pause, Pauses
from streams.events import Operation
from streams.keys import SourceSystem
from streams.link_store import LinkIndex
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import record
from streams.work import WORK_CODEC
from tests.integration.sync_stack import eventually
from tests.unit.batch_world import CONFIG, DV, HS, NoMatches, change, item

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PAUSED = Pauses().with_record(
    EVERYTHING, Pause(target=EVERYTHING, paused=True, by="ada", at=datetime.now(UTC), reason="import")
)


class Reading(NoMatches):
    """A CRM where no record exists; it notes every id the sync reads (a batch applied reads its records)."""

    def __init__(self, system: SourceSystem) -> None:
        super().__init__(system)
        self.reads: list[str] = []

    async def read(self, object_type: str, ids: Sequence[str], **_: object) -> dict[str, Record]:
        del object_type
        self.reads += ids
        return {}

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        raise AssertionError(f"nothing to write here: {ops}")


class Control:
    """The replica's view of the control topic, as the loop asks it (`streams.control.ControlView`)."""

    def __init__(self) -> None:
        self.pauses = Pauses()


async def test_a_pause_taken_in_while_the_apply_loop_reads_a_batch_holds_that_batch(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = TopicCatalog.from_settings(kafka_settings)
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, catalog)
    hubspot = Reading(HS)
    control = Control()
    applier = Applier(CONFIG, {HS: hubspot, DV: Reading(DV)}, LinkIndex())
    loop = ApplyLoop(kafka_settings, catalog, applier, group="pause-read", control=control)  # type: ignore[arg-type]

    read_with_records = asyncio.Event()

    async def pause_while_reading(consumer: Any, **options: Any) -> Any:
        batch = await collect(consumer, **options)  # the read the loop makes (`streams.batching`)
        if batch and not read_with_records.is_set():
            control.pauses = PAUSED  # the replica's tail took the pause in while this batch was read
            read_with_records.set()
        return batch

    monkeypatch.setattr(streams.control, "collect", pause_while_reading)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(loop.run(stop))
        async with running(make_producer(kafka_settings)) as producer:
            work = item(change(HS, "h1", Operation.UPDATE))
            topic, key, value, headers = record(catalog.name(TopicRole.WORK), work.route, work, WORK_CODEC)
            await producer.send_and_wait(topic, value, key=key, headers=headers)
        await asyncio.wait_for(read_with_records.wait(), timeout=60)
        await asyncio.sleep(2.0)
        assert hubspot.reads == [], "a batch read while the pause came in was applied during the pause"

        control.pauses = Pauses()  # resumed: the batch, given back to Kafka, is read again and applied

        async def applied() -> bool | None:
            return True if hubspot.reads == ["h1"] else None

        await eventually(applied, within=30, what="the held batch applied after the resume")
        stop.set()
