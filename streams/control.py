"""The `control` topic: what an operator paused, written by `cdc pause`/`cdc resume` (or the admin page),
obeyed by every sync replica.

Compacted, one partition, keyed by what is paused: `EVERYTHING` (``*``) or a step name. The value is a
`Pause`: paused or not, by whom, when and why. A resume writes ``paused=false`` (kept, so `cdc paused`
can say who resumed and when); a tombstone resumes too. Each change also goes to the audit topic as an
`streams.audit.OperatorAction`, in the same Kafka transaction: both or neither.

Three parts, for three users:

- `set_pause`: the writer (the CLI, the page);
- `read_pauses`: one read of the topic to its end (the CLI, `cdc status`, the page);
- `ControlView`: a replica's tail of the topic, which its loops ask on every batch (`pauses`); the tail
  polls every `TAIL_POLL_MS`, so a replica obeys a pause well within a second.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import ClassVar, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import AwareDatetime, Field

from streams.admin import TopicAdminError
from streams.audit import OPERATOR_CODEC, OperatorAction, operator_key
from streams.batching import Raw, collect
from streams.clients import make_consumer, make_producer, partitions_of, read_to_end, running, start_or_close
from streams.codec import Codec, Position, SchemaError, Versioned
from streams.config import KafkaSettings
from streams.topics import TopicCatalog, TopicRole
from streams.transactions import record, rewind

__all__ = [
    "CONTROL_CODEC",
    "EVERYTHING",
    "TAIL_POLL_MS",
    "ControlView",
    "Pause",
    "Pauses",
    "describe",
    "hold",
    "holds_everything",
    "read_pauses",
    "read_unless_paused",
    "set_pause",
]

log = logging.getLogger(__name__)

EVERYTHING = "*"
"""The key that pauses every step: the sync stops consuming, changes wait in Kafka."""
TAIL_POLL_MS = 200
"""How long the tail waits for a control record before it goes round (beat, stop): a replica obeys a
pause within this plus one batch in hand."""


class Pause(Versioned):
    """The newest word on one target: paused or resumed, by whom, when, why."""

    SCHEMA: ClassVar[str] = "control"

    target: str = Field(min_length=1, description="'*' (everything) or a step name.")
    paused: bool
    by: str = Field(min_length=1, description="Who paused or resumed (an OS user, a page login).")
    at: AwareDatetime
    reason: str | None = None


CONTROL_CODEC: Codec[Pause] = Codec(Pause)


@dataclass(frozen=True)
class Pauses:
    """The newest `Pause` of every target the topic names (resumed ones too, for their history)."""

    latest: Mapping[str, Pause] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def active(self) -> dict[str, Pause]:
        """The targets paused now."""
        return {target: p for target, p in sorted(self.latest.items()) if p.paused}

    @property
    def everything(self) -> Pause | None:
        """The pause of everything, when there is one."""
        found = self.latest.get(EVERYTHING)
        return found if found is not None and found.paused else None

    def steps(self) -> frozenset[str]:
        """The steps paused one by one (not counting a pause of everything)."""
        return frozenset(t for t, p in self.latest.items() if p.paused and t != EVERYTHING)

    def with_record(self, key: str, value: Pause | None) -> Pauses:
        """These pauses after one control record (``None``: a tombstone, which resumes ``key``)."""
        latest = dict(self.latest)
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
        return Pauses(MappingProxyType(latest))


async def set_pause(
    kafka: KafkaSettings,
    target: str,
    *,
    paused: bool,
    by: str,
    reason: str | None,
    at: datetime,
) -> Pause:
    """Pause or resume ``target`` (validated by the caller against the configuration's steps) and audit
    it, in one transaction. Returns what was written."""
    catalog = TopicCatalog.from_settings(kafka)
    value = Pause(target=target, paused=paused, by=by, at=at, reason=reason)
    verb: Literal["pause", "resume"] = "pause" if paused else "resume"
    action = OperatorAction(action=verb, target=target, by=by, reason=reason, at=at)
    producer = make_producer(kafka, transactional_id=f"cdc-control-{uuid.uuid4().hex[:12]}", linger_ms=0)
    async with running(producer), producer.transaction():
        await producer.send(catalog.name(TopicRole.CONTROL), key=target.encode(), value=_encode(value))
        audit = record(catalog.name(TopicRole.AUDIT), operator_key(target), action, OPERATOR_CODEC)
        await producer.send(audit[0], key=audit[1], value=audit[2])
    return value


def _encode(value: Pause) -> bytes:
    return CONTROL_CODEC.encode(value)


class ControlView:
    """One replica's tail of the control topic: `start` reads it to its end, `run` follows it; `pauses` is
    what it says now, ``on_change`` is told of every change."""

    def __init__(
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        *,
        on_change: Callable[[Pauses], None] | None = None,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.topic = catalog.name(TopicRole.CONTROL)
        self.on_change = on_change
        self.on_beat = on_beat
        self.pauses = Pauses()
        self.version = 0
        """Counts the changes taken in: a loop that holds state derived from the pauses compares it."""
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> Pauses:
        consumer = make_consumer(self.kafka, group_id=None)
        await start_or_close(consumer)
        self._consumer = consumer
        try:
            partitions = await _partitions(consumer, self.topic)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            await read_to_end(consumer, partitions, self._take, max_records=1_000)
        except BaseException:
            await self.close()
            raise
        return self.pauses

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("ControlView.run before start")
        while not stop.is_set():
            if self.on_beat is not None:
                self.on_beat()
            self._take(await consumer.getmany(timeout_ms=TAIL_POLL_MS, max_records=1_000))

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        self._consumer = None

    def _take(self, batch: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> int:
        before = self.pauses
        for messages in batch.values():
            for m in messages:
                self.pauses = _apply(self.pauses, m)
        if self.pauses != before:
            self.version += 1
            log.warning("sync pauses now: %s", describe(self.pauses) or "none")
            if self.on_change is not None:
                self.on_change(self.pauses)
        return sum(len(ms) for ms in batch.values())


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = await partitions_of(consumer, topic)
    if not partitions:
        raise TopicAdminError(f"topic {topic} does not exist: run `cdc topics ensure` first")
    return partitions


def _apply(pauses: Pauses, m: ConsumerRecord[bytes, bytes]) -> Pauses:
    if m.key is None:
        return pauses
    key = m.key.decode(errors="replace")
    if m.value is None:
        return pauses.with_record(key, None)
    try:
        value = CONTROL_CODEC.decode(m.value, Position(m.topic, m.partition, m.offset))
    except SchemaError as error:
        # Never guess at an unreadable control record: it is skipped (logged), the state stays as it was.
        log.warning("skipping an unreadable control record for %s: %s", key, error)
        return pauses
    return pauses.with_record(key, value)


def describe(pauses: Pauses) -> str:
    """One line: what is paused, by whom, since when."""
    return "; ".join(
        f"{'everything' if t == EVERYTHING else t} by {p.by} since {p.at.isoformat(timespec='seconds')}"
        for t, p in pauses.active.items()
    )


async def read_pauses(kafka: KafkaSettings) -> Pauses:
    """The control topic read once to its end."""
    view = ControlView(kafka, TopicCatalog.from_settings(kafka))
    try:
        return await view.start()
    finally:
        await view.close()


def holds_everything(control: ControlView | None) -> bool:
    """Is everything paused now? A loop without a control view never is."""
    return control is not None and control.pauses.everything is not None


async def read_unless_paused(
    consumer: AIOKafkaConsumer, control: ControlView | None, *, max_records: int, wait_ms: int
) -> dict[TopicPartition, list[Raw]]:
    """A consume loop's batch, read as `streams.batching.collect` reads it, or nothing when everything was
    paused while it was read: the read waits up to `streams.batching.FIRST_POLL_MS` for a first record,
    and a pause the tail took in meanwhile holds that batch too (given back to Kafka,
    `streams.transactions.rewind`). A loop that asked only before its read could apply a change made right
    after `cdc pause` returned (the admin page's test in CI, 2026-12-07)."""
    batch = await collect(consumer, max_records=max_records, wait_ms=wait_ms)
    if batch and holds_everything(control):
        await rewind(consumer, batch)
        return {}
    return batch


async def hold(consumer: AIOKafkaConsumer) -> None:
    """One turn of a consume loop while everything is paused: its partitions paused (nothing is fetched,
    the records wait in Kafka), one poll that returns nothing after `TAIL_POLL_MS` (no busy loop; the
    member stays in its group: heartbeats run on their own, and polling keeps max.poll.interval.ms).

    A rebalance that ends during the poll hands the member partitions it did not pause, and the poll may
    return their records: they are given back (the positions go back to the committed offsets), or the
    loop would go on past them once the pause ends and never apply them."""
    consumer.pause(*consumer.assignment())
    await rewind(consumer, await consumer.getmany(timeout_ms=TAIL_POLL_MS))
