"""The `links` topic as a `LinkIndex`: read from the start at start-up, then tailed.

Every sync replica holds all links. Records join the index in topic order under the writer rule
(`streams.link_store`); a pollers' delete check and the operator commands read the topic whole the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.admin import TopicAdminError
from streams.clients import make_consumer, partitions_of, start_or_close
from streams.codec import Position
from streams.config import KafkaSettings
from streams.link_store import LinkIndex
from streams.topics import TopicCatalog, TopicRole

__all__ = ["LinkView", "LoadStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadStats:
    links: int
    records: int
    seconds: float


class LinkView:
    """The `links` topic as a `LinkIndex`; every sync replica holds all links."""

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        index: LinkIndex | None = None,
        *,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.on_beat = on_beat
        """Called once per read of the tail (an empty one too): the tail is alive."""
        self.topic = catalog.name(TopicRole.LINKS)
        self.partitions = catalog[TopicRole.LINKS].partitions
        self.index = index if index is not None else LinkIndex()
        self._consumer: AIOKafkaConsumer | None = None
        self._read_to: dict[TopicPartition, int] = {}
        """Per partition of the topic, the offset the index has taken in everything before."""

    async def load(self) -> LoadStats:
        """Read the topic from the start to its end; afterwards `run` tails it."""
        started = time.monotonic()
        consumer = make_consumer(self.kafka, group_id=None, auto_offset_reset="earliest")
        await start_or_close(consumer)
        try:
            records = await self._read_to_end(consumer)
            await self._note_positions(consumer)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer  # `run` tails on from here
        stats = LoadStats(links=len(self.index), records=records, seconds=time.monotonic() - started)
        log.info("link view: %d links from %d records in %.2fs", stats.links, stats.records, stats.seconds)
        return stats

    async def _read_to_end(self, consumer: AIOKafkaConsumer) -> int:
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
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records = 0
        idle = 0
        while True:
            positions = [await _position(consumer, tp) for tp in partitions]
            if all(pos >= end[tp] for pos, tp in zip(positions, partitions, strict=True)):
                return records
            batch = await consumer.getmany(timeout_ms=250, max_records=10_000)
            if not batch:
                idle += 1
                if idle >= 8:  # only transaction markers left before the end offsets  # noqa: PLR2004
                    return records
                continue
            idle = 0
            for tp, messages in batch.items():
                for m in messages:
                    self.index.apply_record(m.key, m.value, Position(tp.topic, tp.partition, m.offset))
                    records += 1

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
                for tp, messages in batch.items():
                    for m in messages:
                        self.index.apply_record(m.key, m.value, Position(tp.topic, tp.partition, m.offset))
                await self._note_positions(consumer)
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
        try:
            async with asyncio.timeout(patience_s):  # the end offsets' request too: the broker may be away
                ends = await consumer.end_offsets(list(consumer.assignment()))
                while any(self._read_to.get(tp, 0) < end for tp, end in ends.items()):
                    if stop.is_set():
                        return False
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning("link view still behind the links topic after %.0fs: applying anyway", patience_s)
            return False
        return True


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return int(await consumer.position(tp))
