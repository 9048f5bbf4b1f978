"""The apply loop's side of the `sync.parked` topic: the parked partitions matching the work partitions it
owns, what waits in them, and their replay in order (the decisions: `consumers.parking`).

The parked topic is keyed and partitioned as the work topic (same key, same partition count, Kafka's
default partitioner), so parked partition N holds the parked items of the routes of work partition N. Its
offsets are committed under the apply group, in the same transactions as the work topic's, by the member
that owns work partition N; this reader is no group member (``group_id=None``), assigned by hand to what
the group gave the loop, and reads from those committed offsets after every rebalance (`reload`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.parking import Waiting, replayable
from streams.admin import TopicAdminError
from streams.clients import make_consumer, partitions_of, read_to_end, start_or_close
from streams.config import KafkaSettings
from streams.deadletters import DeadLetter
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import Raw, decode
from streams.work import WORK_CODEC, WorkItem

__all__ = ["ParkedReader", "Replay"]

log = logging.getLogger(__name__)

Committed = Callable[[TopicPartition], Awaitable[int | None]]


class Replay:
    """Parked items that may go now, in order, with what they came from and the offsets to commit."""

    def __init__(self) -> None:
        self.items: list[WorkItem] = []
        self.origin: dict[int, Raw] = {}
        self.dead: list[DeadLetter] = []
        self.offsets: dict[TopicPartition, int] = {}
        self.first: dict[TopicPartition, int] = {}


class ParkedReader:
    def __init__(self, kafka: KafkaSettings, catalog: TopicCatalog) -> None:
        self.kafka = kafka
        self.topic = catalog.name(TopicRole.PARKED)
        self.work_topic = catalog.name(TopicRole.WORK)
        self.waiting = Waiting()
        """The routes with items parked on this member's partitions (see `consumers.parking.sort`)."""
        self._consumer: AIOKafkaConsumer | None = None
        self._blocked: dict[TopicPartition, str] = {}
        self._generation = -1

    async def start(self) -> None:
        consumer = make_consumer(self.kafka, group_id=None)
        await start_or_close(consumer)
        self._consumer = consumer
        work = {tp.partition for tp in await partitions_of(consumer, self.work_topic)}
        parked = {tp.partition for tp in await partitions_of(consumer, self.topic)}
        if not parked:
            await self.close()
            raise TopicAdminError(f"topic {self.topic} does not exist: run `cdc topics ensure` first")
        if work != parked:
            await self.close()
            raise RuntimeError(
                f"topic {self.topic} has {len(parked)} partition(s) and {self.work_topic} {len(work)}: "
                "they must match (a parked item goes to the partition of its work item's route); "
                "recreate the parked topic with the work topic's count"
            )

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        self._consumer = None

    def _reader(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("ParkedReader used before start")
        return self._consumer

    async def follow(self, generation: int, work: Sequence[TopicPartition], committed: Committed) -> None:
        """Follow the group's assignment of this generation (`reload` when it is a new one); call it only
        while the member holds that generation's assignment."""
        if generation != self._generation:
            await self.reload(work, committed)
            self._generation = generation

    def follows(self, generation: int) -> bool:
        """Does this reader know what waits on the partitions of this generation?"""
        return self._generation == generation

    async def reload(self, work: Sequence[TopicPartition], committed: Committed) -> None:
        """After a rebalance: follow the work partitions the group gave, from the group's committed offsets
        of their parked twins, and count what waits there."""
        reader = self._reader()
        partitions = [TopicPartition(self.topic, tp.partition) for tp in work]
        reader.assign(partitions)
        self._blocked.clear()
        self.waiting = Waiting()
        if not partitions:
            return
        starts = await reader.beginning_offsets(partitions)
        begin = {tp: max(await committed(tp) or 0, starts[tp]) for tp in partitions}
        for tp, offset in begin.items():
            reader.seek(tp, offset)

        def count(batch: Mapping[TopicPartition, list[Raw]]) -> int:
            self.waiting.add(m.key.decode(errors="replace") for ms in batch.values() for m in ms if m.key)
            return sum(len(ms) for ms in batch.values())

        await read_to_end(reader, partitions, count, max_records=5_000)
        for tp, offset in begin.items():
            reader.seek(tp, offset)
        if self.waiting:
            log.warning("%d parked work item(s) wait on this replica's partitions", len(self.waiting))

    async def replay(self, held: frozenset[str]) -> Replay | None:
        """The parked items that may go now (none when nothing waits or all that waits is held)."""
        if not self.waiting:
            return None
        reader = self._reader()
        for tp, pair in list(self._blocked.items()):
            if pair not in held:
                del self._blocked[tp]
                reader.resume(tp)
        batch = await reader.getmany(timeout_ms=0, max_records=500)
        if not batch:
            return None
        out = Replay()
        for tp, messages in batch.items():
            decoded, dead = decode({tp: messages}, WORK_CODEC)
            items = [item for item, _ in decoded]
            n = replayable(items, held)
            if n < len(items):
                # The first held item and all after it are given back, and this partition is not read
                # again until its pair resumes.
                stop_at = decoded[n][1].offset
                reader.seek(tp, stop_at)
                reader.pause(tp)
                self._blocked[tp] = items[n].pair
                dead = [d for d in dead if _offset(d) < stop_at]
                decoded = decoded[:n]
            out.dead.extend(dead)
            for item, m in decoded:
                out.items.append(item)
                out.origin[id(item)] = m
            read = [m.offset for _, m in decoded] + [_offset(d) for d in dead]
            if read:
                out.first[tp] = min(read)
                out.offsets[tp] = max(read) + 1
        return out if out.offsets else None

    def replayed(self, replay: Replay) -> None:
        """The replay committed: its routes' parked items are fewer."""
        self.waiting.remove([item.route for item in replay.items] + [d.key for d in replay.dead if d.key])

    def rewind(self, replay: Replay) -> None:
        """A replay dropped uncommitted: read it again."""
        reader = self._reader()
        for tp, offset in replay.first.items():
            if tp in reader.assignment():
                reader.seek(tp, offset)


def _offset(letter: DeadLetter) -> int:
    return letter.offset
