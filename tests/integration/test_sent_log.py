"""The `sync.sent` topic on a real broker (`streams.sent_log`): notes kept before a write survive the replica
that kept them, reach the others (and a restart of the same replica), and are cleared only by the
transaction that commits their link: a transaction that aborts (the replica killed before it committed)
leaves them for whoever takes over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import pytest

from streams.admin import ensure_topics, open_admin
from streams.clients import make_producer
from streams.config import KafkaSettings
from streams.sent_log import SentLog
from streams.topics import TopicCatalog, TopicRole

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KEY = "hubspot/portal-1/contact/h1"
NOTES = {KEY: {"city": ("fp-e65", "address1_city")}}


class Seen:
    def __init__(self) -> None:
        self.notes: dict[str, dict[str, tuple[str, str]]] = {}

    def __call__(self, key: str, noted: Mapping[str, tuple[str, str]] | None) -> None:
        if noted is None:
            self.notes.pop(key, None)
        else:
            self.notes.setdefault(key, {}).update(noted)


@asynccontextmanager
async def replica(
    kafka: KafkaSettings, catalog: TopicCatalog, writer: str
) -> AsyncIterator[tuple[SentLog, Seen]]:
    seen = Seen()
    log = SentLog(kafka, catalog, on_note=seen, writer=writer)
    await log.start()
    stop = asyncio.Event()
    tail = asyncio.create_task(log.run(stop))
    try:
        yield log, seen
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await tail
        await log.close()


async def commit(kafka: KafkaSettings, log: SentLog, keys: list[str], *, abort: bool = False) -> None:
    """The apply loop's transaction with the clearing of ``keys`` in it, committed or aborted."""
    producer = make_producer(kafka, transactional_id=f"{log.writer}-apply")
    await producer.start()
    try:
        await producer.begin_transaction()
        for topic, key, value, headers in log.clearing(keys):
            await producer.send(topic, key=key, value=value, headers=headers)
        await (producer.abort_transaction() if abort else producer.commit_transaction())
    finally:
        await producer.stop()


@pytest.fixture
async def catalog(kafka_settings: KafkaSettings) -> TopicCatalog:
    made = TopicCatalog.from_settings(kafka_settings)
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, made)
    return made


async def test_notes_outlive_their_writer_and_an_aborted_commit_and_go_with_a_committed_one(
    kafka_settings: KafkaSettings, catalog: TopicCatalog
) -> None:
    stop = asyncio.Event()
    async with replica(kafka_settings, catalog, "b") as (b, seen_by_b):
        async with replica(kafka_settings, catalog, "a") as (a, seen_by_a):
            await a.record(NOTES)
            await commit(kafka_settings, a, [KEY], abort=True)  # a killed before its transaction committed
            assert await b.caught_up(stop)
            assert seen_by_b.notes == NOTES  # the other replica has them once caught up
            assert seen_by_a.notes == {}  # its own notes a writer holds already: not taken in twice
        # a restart of the same replica is another writer: it takes in what its earlier life left
        async with replica(kafka_settings, catalog, "a-again") as (_, seen_after_restart):
            assert seen_after_restart.notes == NOTES
        await commit(kafka_settings, b, [KEY])  # b took the partition over and committed the link
        assert await b.caught_up(stop)
        assert seen_by_b.notes == NOTES  # its own clearing: it forgot them itself when it committed
    async with replica(kafka_settings, catalog, "c") as (_, seen_by_c):
        assert seen_by_c.notes == {}  # cleared for everyone who starts later


async def test_an_unreadable_note_is_skipped_not_fatal(
    kafka_settings: KafkaSettings, catalog: TopicCatalog
) -> None:
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        topic = catalog.name(TopicRole.SENT)
        for value in (b"not json", b'{"by": "x"}', b'{"by": "x", "at": 0, "fields": {"city": ["fp", "s"]}}'):
            await producer.send_and_wait(topic, key=b"k", value=value)
    finally:
        await producer.stop()
    async with replica(kafka_settings, catalog, "d") as (_, seen):
        assert seen.notes == {}  # malformed, incomplete, and a week-old note: none taken in
