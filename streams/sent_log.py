"""The `sync.sent` topic: what a sync replica is about to write, kept by Kafka before it writes.

The applier notes each update's values before it sends them (`consumers.sent.SentValues`), so that a batch
read again after some of its writes landed takes those values for this daemon's writes, not for users'
edits. A note in memory dies with its replica: one SIGKILLed after its writes landed but before its Kafka
transaction (link update and audit) committed left the replica that took its partitions over nothing to
know those values by. That one took them for a user's edits, and in a conflict an old value could win over
the user's newer edit on the other side (the chaos test's seeds 136 and 141: a HubSpot field, then a
company association, which HubSpot's property history cannot vouch for; a value written to Dataverse has no
such history at all).

So the notes are also produced here, one record per written record (keyed by its record key, the value the
notes of its fields), and acknowledged by the brokers (``acks=all``, outside any transaction: a batch that
aborts must not take them away) before the writes are sent (`record`). The transaction that commits the
links covering them also clears them, with tombstones (`clearing`): a committed link knows the values. The
topic is compacted, so it holds only notes whose link has not committed.

Every replica tails the topic from the start and hands the notes of other writers to ``on_note`` (its own
it holds already; a restarted replica is another writer, so it takes in what its earlier life left). A
replica given partitions waits for the tail to reach the topic's end first (`caught_up`), as it does for the
links.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from streams.clients import make_producer, start_or_close
from streams.config import KafkaSettings
from streams.tails import TopicTail
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import Outgoing

__all__ = ["NOTE_KEPT_S", "Notes", "SentLog"]

log = logging.getLogger(__name__)

NOTE_KEPT_S = 7 * 24 * 3600.0
"""A note older than this is not taken in: its record's link has long been written again or dropped (a
record deleted before its link came leaves its note behind until compaction meets a tombstone)."""
WRITER = "by"
"""The header naming a tombstone's writer (a note names it in its value)."""

Notes = Callable[[str, Mapping[str, tuple[str, str]] | None], None]
"""Told of another writer's notes of one record (``None``: cleared, its link committed)."""


class SentLog:
    """One replica's side of the `sync.sent` topic: it keeps its notes there and takes in the others'."""

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        *,
        on_note: Notes,
        on_beat: Callable[[], None] | None = None,
        writer: str | None = None,
    ) -> None:
        self.kafka = kafka
        self.topic = catalog.name(TopicRole.SENT)
        self.on_note = on_note
        self.on_beat = on_beat
        self.writer = writer or uuid.uuid4().hex
        """This replica's name in the notes it writes; a new one per start."""
        self.taken = 0
        """Other writers' notes and clearings taken in so far."""
        self._producer: AIOKafkaProducer | None = None
        self._tail = TopicTail(kafka, self.topic, self._take, what="notes tail", on_beat=on_beat)

    async def start(self) -> int:
        """Read the topic to its end (what other writers left pending) and open the producer; `run` tails
        on. Returns how many notes and clearings were taken in."""
        await self._tail.open()
        try:
            producer = make_producer(self.kafka, linger_ms=0)
            await start_or_close(producer)
            self._producer = producer
        except BaseException:
            await self.close()
            raise
        return self.taken

    async def record(self, notes: Mapping[str, Mapping[str, tuple[str, str]]]) -> None:
        """Keep ``notes`` (record key -> field -> (fingerprint sent, source field)); returns once every
        broker in sync has them. Raises (a Kafka error) when they could not be kept."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("SentLog.record before start")
        at = time.time()
        sent = [
            await producer.send(
                self.topic,
                key=key.encode(),
                value=orjson.dumps({"by": self.writer, "at": at, "fields": dict(fields)}),
            )
            for key, fields in notes.items()
        ]
        await asyncio.gather(*sent)

    def clearing(self, keys: Iterable[str]) -> list[Outgoing]:
        """Tombstones for these records' notes, to go in the transaction that commits their links."""
        return [(self.topic, key.encode(), None, [(WRITER, self.writer.encode())]) for key in keys]

    async def run(self, stop: asyncio.Event) -> None:
        """Tail the topic until ``stop``, handing other writers' notes and clearings to ``on_note``."""
        if not self._tail.opened:
            raise RuntimeError("SentLog.run before start")
        self._tail.on_beat = self.on_beat
        await self._tail.run(stop)

    async def caught_up(self, stop: asyncio.Event, *, patience_s: float = 20.0) -> bool:
        """Wait until the tail has taken in every note kept before this call (a new owner of partitions,
        before its first batch). False, logged, when ``patience_s`` passed first (the broker away)."""
        return await self._tail.caught_up(stop, patience_s=patience_s)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        self._producer = None
        await self._tail.close()

    def _take(self, batch: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> int:
        now = time.time()
        for messages in batch.values():
            for m in messages:
                taken = _read(m, self.writer, now)
                if taken is not None:
                    self.on_note(*taken)
                    self.taken += 1
        return sum(len(ms) for ms in batch.values())


def _read(
    m: ConsumerRecord[bytes, bytes], writer: str, now: float
) -> tuple[str, dict[str, tuple[str, str]] | None] | None:
    """Another writer's notes of one record, or its clearing (``None``); ``None`` for this writer's own
    records, stale notes and records that are not notes (logged)."""
    if m.key is None:
        return None
    key = m.key.decode(errors="replace")
    if m.value is None:
        by = dict(m.headers or ()).get(WRITER, b"").decode(errors="replace")
        return None if by == writer else (key, None)
    try:
        value: Any = orjson.loads(m.value)
        if value["by"] == writer or now - float(value["at"]) > NOTE_KEPT_S:
            return None
        return key, {str(f): (str(fp), str(source)) for f, (fp, source) in value["fields"].items()}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        log.warning("skipping an unreadable note of %s at %s/%d: %r", key, m.partition, m.offset, error)
        return None
