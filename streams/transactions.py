"""Consume, process, produce, exactly once: a batch read from some topics, what it makes produced to others,
and its consumed offsets committed, in one Kafka transaction. The sync's router and apply loop are two such
loops (`consumers.router`, `consumers.apply_loop`); the pollers' checkpoint store is the produce-only kind.

One batch, in order:

1. take the group's `Ownership.generation` (a rebalance moves it), then `streams.batching.collect` up to N
   records, waiting for more while a backlog is arriving, up to M ms after the first;
2. process them (the caller; no Kafka there);
3. if the generation moved meanwhile, `rewind` (nothing is committed: the partitions' new owner reads the
   batch again), else `transaction`: every record the batch made and the consumed `offsets`, in one bounded
   transaction, so an offset moves only once what it caused is acknowledged (guarantee 1).

Kafka itself would not refuse a stale commit (aiokafka's transactional offset commits carry no group
generation): step 3's check is what keeps a batch read before a rebalance from being committed after it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams.clients import make_producer, settle
from streams.codec import Codec, Position, SchemaError, Versioned
from streams.config import KafkaSettings
from streams.deadletters import DEADLETTER_CODEC, DeadLetter
from streams.topics import TopicCatalog

__all__ = [
    "TRANSACTION_DEADLINE_S",
    "Lag",
    "Outgoing",
    "Ownership",
    "Raw",
    "TransactionalLoop",
    "dead_letter",
    "dead_letter_record",
    "decode",
    "offsets",
    "record",
    "rewind",
    "tombstone",
    "transaction",
]

Raw: TypeAlias = ConsumerRecord[bytes, bytes]
Outgoing: TypeAlias = tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]
"""A record to produce: topic, key, value (None: a tombstone), headers."""
V = TypeVar("V", bound=Versioned)


def record(topic: str, key: str, value: V, codec: Codec[V]) -> Outgoing:
    return (topic, key.encode(), codec.encode(value), [codec.header])


def tombstone(topic: str, key: str) -> Outgoing:
    return (topic, key.encode(), None, [])


def dead_letter_record(topic: str, letter: DeadLetter) -> Outgoing:
    return record(topic, letter.key or "", letter, DEADLETTER_CODEC)


def dead_letter(message: Raw, error: Exception, *, step: str | None = None, attempts: int = 1) -> DeadLetter:
    """A consumed message that could not be processed, kept whole with why."""
    value, encoding = DeadLetter.wrap_value(message.value)
    return DeadLetter(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key.decode("utf-8", "replace") if message.key is not None else None,
        value=value,
        value_encoding=encoding,
        step=step,
        error_class=type(error).__name__,
        error=str(error)[:2000] or type(error).__name__,
        attempts=attempts,
        failed_at=datetime.now(UTC),
    )


def decode(
    batch: Mapping[TopicPartition, Sequence[Raw]], codec: Codec[V]
) -> tuple[list[tuple[V, Raw]], list[DeadLetter]]:
    """Every message of a batch as a value of ``codec``, with the message it came from; one that is not a
    valid value is a dead letter instead."""
    decoded: list[tuple[V, Raw]] = []
    dead: list[DeadLetter] = []
    for tp, messages in batch.items():
        for m in messages:
            try:
                decoded.append((codec.decode(m.value, Position(tp.topic, tp.partition, m.offset)), m))
            except SchemaError as error:
                dead.append(dead_letter(m, error))
    return decoded, dead


def offsets(batch: Mapping[TopicPartition, Sequence[Raw]]) -> dict[TopicPartition, int]:
    """The offsets to commit once ``batch`` is processed: each partition's last offset read, plus one."""
    return {tp: messages[-1].offset + 1 for tp, messages in batch.items() if messages}


@dataclass(frozen=True, slots=True)
class Lag:
    """How far one consumed partition is behind its end: records, and the age of the last record read
    (0 when caught up)."""

    role: str
    topic: str
    partition: int
    records: int
    seconds: float


class TransactionalLoop:
    """A consume-process-produce loop's own parts: its group and whether it is a member now
    (:attr:`joined`), its transactional producer (a fresh transactional id per loop), its lag, reported at
    most once a second, and its heartbeat (``on_beat``, once per batch read, an empty one too)."""

    role: str

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        *,
        group: str,
        on_lag: Callable[[Lag], None] | None = None,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.catalog = catalog
        self.group = group
        self.transactional_id = f"{group}-{uuid.uuid4().hex[:12]}"
        self.on_lag = on_lag
        self.on_beat = on_beat
        self.ownership = Ownership()
        """The group's rebalances as this loop's consumer sees them (a new one per run)."""
        self._last_seen: dict[TopicPartition, float] = {}
        self._lag_reported = 0.0

    @property
    def joined(self) -> bool:
        """This loop's consumer got its assignment (an empty one too) and no rebalance took it since."""
        return self.ownership.joined

    def beat(self) -> None:
        if self.on_beat is not None:
            self.on_beat()

    async def report_lag(
        self, consumer: AIOKafkaConsumer, batch: Mapping[TopicPartition, Sequence[Raw]]
    ) -> None:
        """Lag of every assigned partition (at most once a second): high watermark - position."""
        for tp, messages in batch.items():
            if messages:
                self._last_seen[tp] = messages[-1].timestamp / 1000
        now = time.time()
        if self.on_lag is None or now - self._lag_reported < 1.0:
            return
        self._lag_reported = now
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            behind = max(0, high - await consumer.position(tp))
            seen = self._last_seen.get(tp)
            seconds = max(0.0, now - seen) if behind and seen is not None else 0.0
            self.on_lag(Lag(self.role, tp.topic, tp.partition, behind, seconds))

    def producer(self) -> AIOKafkaProducer:
        return make_producer(self.kafka, transactional_id=self.transactional_id, linger_ms=2)


async def rewind(consumer: AIOKafkaConsumer, batch: Mapping[TopicPartition, Sequence[Raw]]) -> None:
    """Give back what a dropped batch read: a partition of it this member holds (again) reads on from the
    group's committed offset. A rebalance resets positions only when it ends after the read: one that
    ended during the read left them past the batch, which would be skipped."""
    for tp, messages in batch.items():
        if messages and tp in consumer.assignment():
            committed = await consumer.committed(tp)
            consumer.seek(tp, committed if committed is not None else messages[0].offset)


class Ownership(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """Counts revocations: a batch read in one generation and applied in another is no longer this
    replica's to write or commit (aiokafka's transactional offset commits carry no group generation, so
    Kafka would not refuse the commit of such a zombie batch). ``joined`` is True from an assignment (an
    empty one too: a member beyond the partition count) to the next revocation."""

    def __init__(self) -> None:
        self.generation = 0
        self.joined = False

    async def on_partitions_revoked(self, revoked: object) -> None:
        del revoked  # eager protocol: everything is revoked
        self.generation += 1
        self.joined = False

    async def on_partitions_assigned(self, assigned: object) -> None:
        del assigned
        self.joined = True


TRANSACTION_DEADLINE_S = 60.0
"""A transaction of the router or the apply loop that has not committed after this long (a broker that
came back while the client's coordinator lookups failed can leave it waiting forever) is given up: the loop
restarts with a new producer of the same transactional id, which fences the old one and aborts its
transaction, and the batch is read again."""


async def transaction(
    producer: AIOKafkaProducer,
    records: Sequence[Outgoing],
    offsets: dict[TopicPartition, int],
    group: str,
) -> None:
    """Send ``records`` and commit them with the consumed ``offsets`` in one bounded Kafka transaction."""
    sent: list[asyncio.Future[object]] = []
    try:
        async with asyncio.timeout(TRANSACTION_DEADLINE_S), producer.transaction():
            for topic, key, value, headers in records:
                sent.append(await producer.send(topic, key=key, value=value, headers=headers))
            await producer.send_offsets_to_transaction(offsets, group)
    finally:
        settle(sent)
