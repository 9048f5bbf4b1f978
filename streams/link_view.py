"""The `links` topic as a link store: read at start-up, then tailed.

Every sync replica holds all links, in a `streams.link_db.LinkStore` file that keeps the offsets it has
applied: a start reads only the tail after them, unless the file cannot follow on from them (`_stale`), when
it is rebuilt from the start. The pollers' delete check and the operator commands read the topic whole into
an in-memory `streams.link_store.LinkIndex`. Records join either in topic order under the writer rule
(`streams.link_store`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams._link_batch import read_record
from streams.admin import TopicAdminError
from streams.clients import caught_up, make_consumer, partitions_of, read_to_end, start_or_close
from streams.codec import Position
from streams.config import KafkaSettings
from streams.link_db import LinkStore
from streams.link_store import LinkIndex
from streams.topics import TopicCatalog, TopicRole

__all__ = ["TOMBSTONES_KEPT_S", "LinkView", "LoadStats"]

log = logging.getLogger(__name__)

TOMBSTONES_KEPT_S = 24 * 3600.0
"""How long compaction keeps a tombstone: Kafka's default ``delete.retention.ms`` (one day), which the
`links` topic keeps. A file not brought up to date for longer may have missed a deletion that compaction
has since erased from the topic, so it is rebuilt."""
MARK_EVERY_S = 60.0
"""How often a running tail records that the file is up to date (`LinkStore.mark_current`)."""

Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class LoadStats:
    links: int
    records: int
    seconds: float
    rebuilt: bool = True
    """False when the store resumed from the offsets it kept (only the tail was read)."""


class LinkView:
    """The `links` topic as a link store; every sync replica holds all links."""

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        index: LinkIndex | LinkStore | None = None,
        *,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.on_beat = on_beat
        """Called once per read of the tail (an empty one too): the tail is alive."""
        self.topic = catalog.name(TopicRole.LINKS)
        self.partitions = catalog[TopicRole.LINKS].partitions
        self.index: LinkIndex | LinkStore = index if index is not None else LinkIndex()
        self._marked = 0.0
        self._consumer: AIOKafkaConsumer | None = None
        self._read_to: dict[TopicPartition, int] = {}
        """Per partition of the topic, the offset the index has taken in everything before."""

    async def load(self) -> LoadStats:
        """Read the topic to its end, from the store's offsets or from the start; then `run` tails it."""
        started = time.monotonic()
        consumer = make_consumer(self.kafka, group_id=None, auto_offset_reset="earliest")
        await start_or_close(consumer)
        try:
            records, rebuilt = await self._read_to_end(consumer)
            await self._note_positions(consumer)
            self._mark_current()
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer  # `run` tails on from here
        stats = LoadStats(len(self.index), records, time.monotonic() - started, rebuilt)
        log.info(
            "link view: %d links, %s %d records in %.2fs",
            stats.links,
            "rebuilt from" if rebuilt else "resumed from its offsets with",
            stats.records,
            stats.seconds,
        )
        return stats

    async def _seek(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
        """Seek each partition where the index goes on from; True when that is the start (a rebuild)."""
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        index = self.index
        stored = index.offsets() if isinstance(index, LinkStore) else {}
        if isinstance(index, LinkStore) and stored:
            reason = _stale(stored, begin, end, index.written_at(), time.time())
            if reason is not None:
                log.warning("link store %s: %s; rebuilding it from the topic", index.path, reason)
                index.reset()
                stored = {}
        for tp in partitions:
            consumer.seek(tp, stored.get(tp.partition, begin[tp]))
        return not stored

    async def _read_to_end(self, consumer: AIOKafkaConsumer) -> tuple[int, bool]:
        partitions = await partitions_of(consumer, self.topic)
        if not partitions:
            raise TopicAdminError(f"topic {self.topic} does not exist: run `cdc topics ensure` first")
        if len(partitions) != self.partitions:
            log.warning(
                "topic %s has %d partitions, the settings say %d: reading all %d",
                self.topic,
                len(partitions),
                self.partitions,
                len(partitions),
            )
        consumer.assign(partitions)
        rebuilt = await self._seek(consumer, partitions)
        return await read_to_end(consumer, partitions, self._apply, max_records=2_000), rebuilt

    def _apply(self, batch: Records) -> int:
        """One read of the topic: into the store in one transaction with the offsets after it, or into the
        in-memory index record by record."""
        index = self.index
        if isinstance(index, LinkStore):
            incoming = [
                read_record(m.key, m.value, Position(tp.topic, tp.partition, m.offset))
                for tp, ms in batch.items()
                for m in ms
            ]
            after = {tp.partition: ms[-1].offset + 1 for tp, ms in batch.items() if ms}
            index.apply_batch([i for i in incoming if i is not None], after)
        else:
            for tp, messages in batch.items():
                for m in messages:
                    index.apply_record(m.key, m.value, Position(tp.topic, tp.partition, m.offset))
        return sum(len(ms) for ms in batch.values())

    def _mark_current(self) -> None:
        if isinstance(self.index, LinkStore):
            self.index.mark_current()
            self._marked = time.monotonic()

    async def close(self) -> None:
        """Stop the consumer `load` left open for `run` (when `run` is not going to be called)."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        if consumer is None:
            await self.load()
            consumer = self._consumer
        if consumer is None:
            raise RuntimeError("link view consumer did not start")
        try:
            while not stop.is_set():
                if self.on_beat is not None:
                    self.on_beat()
                batch = await consumer.getmany(timeout_ms=200, max_records=5_000)
                self._apply(batch)
                await self._note_positions(consumer)
                if time.monotonic() - self._marked > MARK_EVERY_S:
                    self._mark_current()
        finally:
            await consumer.stop()
            self._consumer = None

    async def _note_positions(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            self._read_to[tp] = await _position(consumer, tp)

    async def caught_up(self, stop: asyncio.Event, *, patience_s: float = 20.0) -> bool:
        """Wait until the index holds every link committed before this call (the topic's last stable
        offsets: an open transaction's links are not committed yet). After a rebalance the new owner of a
        partition must plan with the links its old owner committed, not with a copy its tail has not caught
        up with (it would plan on stale fingerprints and write a link at a revision already taken). False,
        logged, when ``patience_s`` passed first (the broker unreachable): the loop goes on, and the link
        writer's revision rule still refuses to write over a newer link it has seen."""
        consumer = self._consumer
        if consumer is None:
            return True  # not tailing: `load` read to the end
        return await caught_up(consumer, self._read_to, stop, patience_s=patience_s, what="link view")


def _stale(
    stored: dict[int, int],
    begin: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    written_at: float | None,
    now: float,
) -> str | None:
    """Why a store's offsets cannot be followed on from (``None``: they can). Pure."""
    partitions = {tp.partition: tp for tp in begin}
    for partition, offset in sorted(stored.items()):
        tp = partitions.get(partition)
        if tp is None:
            return f"it read partition {partition}, which the topic does not have (was it re-created?)"
        if offset < begin[tp]:
            return f"partition {partition}: its offset {offset} is below the log start {begin[tp]}"
        if offset > end[tp]:
            return f"partition {partition}: its offset {offset} is past the end {end[tp]} (topic re-created?)"
    if written_at is None or now - written_at > TOMBSTONES_KEPT_S:
        return "it was last brought up to date longer ago than compaction keeps tombstones"
    return None


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return int(await consumer.position(tp))
